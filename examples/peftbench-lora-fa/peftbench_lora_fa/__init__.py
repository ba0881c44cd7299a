"""peftbench-lora-fa: an example peftbench plugin adding one method, `lora_fa` (lora_fa.py, conf/method/lora_fa.yaml)."""
