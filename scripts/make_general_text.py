"""Write peftbench/train/general_text.txt, the held-out general-text set of `train.forgetting=true`:

    python scripts/make_general_text.py            # rewrites the shipped file (same seed: same file)

How it is made: plain English sentences about everyday subjects (weather, cooking, travel, work, nature,
history, science, sport), each line two or three sentences drawn from hand-written templates and word
lists with a fixed seed. No task's data is in it (no math, no reviews, no questions and answers), so a
model that forgets general English after fine-tuning scores a higher loss on it. It is small (300 lines,
about 9,000 words) and synthetic: a sanity check that runs offline, not a replacement for a real corpus
such as the Wikipedia sample peft's method comparison uses.
"""

import argparse
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "peftbench" / "train" / "general_text.txt"

PEOPLE = ["my grandmother", "the baker on the corner", "a young teacher", "the old fisherman", "our neighbour",
          "a group of students", "the doctor", "my brother", "the farmer", "a tired traveller", "the librarian",
          "two friends", "the gardener", "a local artist", "the mayor", "the children next door"]
PLACES = ["the harbour", "the market", "a small village", "the mountains", "the city library", "the train station",
          "the river bank", "an old castle", "the school garden", "the museum", "a quiet beach", "the forest",
          "the town square", "a busy kitchen", "the hospital", "a country road"]
TIMES = ["early in the morning", "after lunch", "on a rainy afternoon", "late at night", "at the end of the summer",
         "during the winter", "on Sunday", "before the storm", "in the spring", "every evening", "last year",
         "at dawn"]
ACTIONS = ["walked slowly to", "drove to", "painted a picture of", "wrote a letter about", "took a photograph of",
           "cleaned", "told a long story about", "visited", "planted flowers near", "read a book in",
           "cooked dinner near", "waited patiently at"]
FACTS = [
    "Water boils at a lower temperature high in the mountains, because the air pressure there is lower.",
    "Bees carry pollen from flower to flower, and many fruits would not grow without them.",
    "The moon has no light of its own; it reflects the light of the sun.",
    "Bread rises because yeast turns sugar into gas, which is trapped in the dough.",
    "Rivers carry sand and stones to the sea, and over many years they shape the land around them.",
    "Trees lose their leaves in autumn to save water during the cold months.",
    "A compass needle points north because it lines up with the magnetic field of the earth.",
    "Many birds fly south in the autumn and return in the spring when the days grow longer.",
    "Salt was once so valuable that workers were sometimes paid with it.",
    "The first printed books were expensive, and only a few people could read them.",
    "Sound travels faster through water than through air.",
    "Old bridges were often built of stone, and some of them still stand after hundreds of years.",
    "Plants take in light, water and air, and they give off the oxygen that animals breathe.",
    "In a marathon the runners cover a little more than forty-two kilometres.",
    "A good soup needs time: the vegetables should cook slowly until they are soft.",
    "Clouds are made of tiny drops of water or ice that float in the air.",
]
FEELINGS = ["It was quiet and peaceful.", "Everyone seemed to be in a hurry.", "The air smelled of fresh bread.",
            "Nobody said a word for a long time.", "The light was soft and golden.", "It started to rain again.",
            "The streets were almost empty.", "Somewhere a dog was barking.", "The wind was cold but pleasant.",
            "There was music coming from an open window.", "The shops were just opening.",
            "It felt like the first day of a holiday."]
ENDINGS = ["Later they went home and talked about it over tea.", "It was a day that nobody forgot.",
           "The next morning everything looked different.", "They promised to come back the following week.",
           "By the evening the work was finished.", "Then they sat down and watched the sun go down.",
           "After that, the place never felt quite the same.", "In the end it was worth the long journey."]


def line(rng: random.Random) -> str:
    story = (f"{rng.choice(TIMES).capitalize()}, {rng.choice(PEOPLE)} {rng.choice(ACTIONS)} {rng.choice(PLACES)}. "
             f"{rng.choice(FEELINGS)}")
    shape = rng.random()
    if shape < 0.4:
        return f"{story} {rng.choice(ENDINGS)}"
    if shape < 0.7:
        return f"{rng.choice(FACTS)} {story}"
    return f"{story} {rng.choice(FACTS)} {rng.choice(ENDINGS)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=300)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("-o", "--out", type=Path, default=OUT)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    lines, seen = [], set()
    while len(lines) < args.lines:
        text = line(rng)
        if text not in seen:
            seen.add(text)
            lines.append(text)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}: {len(lines)} lines, {sum(len(t.split()) for t in lines)} words")


if __name__ == "__main__":
    main()
