"""One-shot: copy the README's sections into the user-guide pages (run from the repo root).

The guide pages under docs/ were made from the README's sections this way. After the last
feature branch is merged, run it once more (``python docs/_tools/readme_to_guide.py``), add
pages for sections it reports as unplaced, shrink the README to the overview (the two
commands, the headline results, links to the site), and delete this script: from then on the
pages are the source. Image links ``docs/x.png`` become ``x.png``; each page keeps the
closing lines (links into the API reference) it has after its ``<!-- guide-end -->`` marker.
"""

from __future__ import annotations

import re
from pathlib import Path

# README heading prefix -> (page, title); a section can only go to one page
PAGES = {
    "Install": ("install.md", "Install"),
    "Python API": ("metrics-in-your-code.md", "Metrics and losses in your own code"),
    "Training": ("train.md", "Train (`alignuniform train`)"),
    "Evaluation": ("evaluate.md", "Evaluate (`alignuniform eval`)"),
    "Augmentation components": ("augmentations.md", "Augmentation components (`data.augment`)"),
    "Reports": ("reports.md", "Reports (`alignuniform report`)"),
    "Theory": ("theory.md", "Theory, executable (`alignuniform theory`)"),
    "Sentence embeddings": ("text.md", "Sentence embeddings (`alignuniform text`)"),
    "Dense features": ("dense.md", "Dense features (`alignuniform.dense`)"),
    "Measur": ("measure.md", "Measure (`alignuniform measure`)"),
    "Sweep": ("sweeps.md", "Sweeps (`alignuniform sweep`)"),
}
SKIP = ("Two commands", "Documentation", "Layout", "Command-line conventions")
MARK = "<!-- guide-end -->"


def sections(readme: str) -> list[tuple[str, str]]:
    parts = re.split(r"^## (.+)$", readme, flags=re.M)
    return [(parts[i].strip(), parts[i + 1].strip("\n")) for i in range(1, len(parts), 2)]


def main() -> None:
    docs = Path("docs")
    for heading, body in sections(Path("README.md").read_text(encoding="utf-8")):
        target = next((v for k, v in PAGES.items() if heading.startswith(k)), None)
        if target is None:
            if not heading.startswith(SKIP):
                print(f"unplaced README section: {heading}")
            continue
        page, title = target
        body = re.sub(r"^(#+) ", r"\1# ", body, flags=re.M).replace("](docs/", "](")
        # repository files outside docs/ are not pages of the site
        body = re.sub(r"\[([^\]]+)\]\((BENCHMARKS|CHANGELOG|README)\.md\)",
                      r"\1 (the repository's `\2.md`)", body)
        old = (docs / page).read_text(encoding="utf-8") if (docs / page).exists() else ""
        tail = old.split(MARK, 1)[1] if MARK in old else ""
        text = f"# {title}\n\n{body}\n\n{MARK}{tail or chr(10)}"
        (docs / page).write_text(text, encoding="utf-8")
        print(f"{heading} -> docs/{page}")


if __name__ == "__main__":
    main()
