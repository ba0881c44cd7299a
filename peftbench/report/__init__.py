"""Reports, apart from training and free of torch: run files in (`runs`), tables built (`build`) and
rendered in Markdown, LaTeX, CSV or HTML (`tables`), plots (`plots`), and the command (`command`)."""
