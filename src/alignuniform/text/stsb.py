"""STS Benchmark files and plain sentence lists, read strictly.

The STS-B distribution (``sts-train.csv``, ``sts-dev.csv``, ``sts-test.csv``) is
tab-separated with columns genre, file, years, id, score, sentence1, sentence2; some lines
carry extra trailing fields (source credits) and many sentences contain unbalanced double
quotes, so the files are split on tabs with no quote handling at all: a CSV reader with
default quoting would silently glue lines together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import numpy as np

STSB_COLUMNS = ("genre", "file", "years", "id", "score", "sentence1", "sentence2")
SCORE_RANGE = (0.0, 5.0)


@dataclass(frozen=True)
class StsSplit:
    """One STS-B split: sentence pairs with gold similarity scores in [0, 5].

    Attributes:
        sentences1: First sentence of each pair.
        sentences2: Second sentence of each pair.
        scores: Gold scores, float64 array of shape (n_pairs,).
        path: The file the split was read from.
        n_extra_field_lines: Lines that carried fields after sentence2 (ignored by design:
            they hold source credits, not data).
    """

    sentences1: list[str]
    sentences2: list[str]
    scores: np.ndarray
    path: Path
    n_extra_field_lines: int = 0

    def __len__(self) -> int:
        return len(self.scores)

    def sentences(self) -> list[str]:
        """Distinct sentences of the split, in order of first appearance.

        Duplicates are dropped because a repeated sentence would add zero-distance pairs to
        uniformity, rewarding the data set's repetition rather than the encoder.
        """
        return list(dict.fromkeys([*self.sentences1, *self.sentences2]))

    def positive_mask(self, threshold: float = 4.0) -> np.ndarray:
        """Boolean mask of pairs whose gold score is strictly above ``threshold``.

        Raises:
            ValueError: If no pair is above the threshold (alignment would be undefined).
        """
        mask = self.scores > threshold
        if not mask.any():
            raise ValueError(
                f"no pair in {self.path} has a gold score above {threshold} (max score "
                f"{self.scores.max():.3f}); alignment needs positive pairs: lower the "
                "threshold or use a split with highly similar pairs"
            )
        return mask


def stsb_file(path: str | Path, split: str = "dev") -> Path:
    """The STS-B file of ``split``: ``path`` itself if a file, else ``path/sts-<split>.csv``.

    Raises:
        FileNotFoundError: If the file does not exist (the message lists the splits found).
    """
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(
            f"STS-B directory {path} does not exist; pass the folder holding sts-dev.csv"
        )
    file = path / f"sts-{split}.csv"
    if not file.is_file():
        found = sorted(p.stem.removeprefix("sts-") for p in path.glob("sts-*.csv"))
        raise FileNotFoundError(
            f"no split {split!r} in {path} (expected {file.name}); splits found: "
            f"{found or 'none'}"
        )
    return file


def _read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 file, line ends removed (``\\n``, ``\\r\\n`` or ``\\r``).

    Raises:
        ValueError: The file is not UTF-8; the message names the file and line.
    """
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        # counted as the lines below are split, so a lone "\r" ends a line here too
        line = len(StringIO(data[: err.start].decode("utf-8") + "?", newline="").readlines())
        raise ValueError(
            f"{path}:{line}: not UTF-8 text ({err.reason} at byte {err.start}); re-save the "
            "file as UTF-8, e.g. iconv -f latin1 -t utf-8"
        ) from None
    return [line.rstrip("\r\n") for line in StringIO(text, newline="")]


def read_stsb(path: str | Path, split: str = "dev") -> StsSplit:
    """Read an STS-B split with tab splitting and no quote handling.

    Args:
        path: An STS-B file, or the directory holding ``sts-<split>.csv``.
        split: ``"train"``, ``"dev"`` or ``"test"`` when ``path`` is a directory.

    Returns:
        The split. Fields after sentence2 are ignored and counted in ``n_extra_field_lines``.

    Raises:
        FileNotFoundError: If the file is missing.
        ValueError: On bytes that are not UTF-8, a line with fewer than 7 fields, a score
            that is not a number in [0, 5], an empty or whitespace-only sentence, or a file
            with no pairs; the message names the file and line.
    """
    file = stsb_file(path, split)
    s1: list[str] = []
    s2: list[str] = []
    scores: list[float] = []
    n_extra = 0
    for lineno, line in enumerate(_read_lines(file), start=1):
        fields = line.split("\t")
        where = f"{file}:{lineno}"
        if len(fields) < len(STSB_COLUMNS):
            raise ValueError(
                f"{where}: expected {len(STSB_COLUMNS)} tab-separated fields "
                f"({', '.join(STSB_COLUMNS)}), got {len(fields)}: {line[:80]!r}"
            )
        n_extra += len(fields) > len(STSB_COLUMNS)
        try:
            score = float(fields[4])
        except ValueError:
            raise ValueError(f"{where}: score {fields[4]!r} is not a number") from None
        if not (math.isfinite(score) and SCORE_RANGE[0] <= score <= SCORE_RANGE[1]):
            raise ValueError(f"{where}: score {score} is outside [0, 5]")
        for column, text in (("sentence1", fields[5]), ("sentence2", fields[6])):
            if not text.strip():
                raise ValueError(
                    f"{where}: {column} is empty or whitespace-only; fix or remove the line"
                )
        s1.append(fields[5])
        s2.append(fields[6])
        scores.append(score)
    if not scores:
        raise ValueError(f"{file} holds no sentence pairs")
    return StsSplit(s1, s2, np.asarray(scores, dtype=np.float64), file, n_extra)


def read_sentences(path: str | Path) -> list[str]:
    """Read a text file with one sentence per line (the SimCSE training format).

    Raises:
        FileNotFoundError: If the file is missing.
        ValueError: If the file is not UTF-8 (the line is named), is empty or has
            empty/whitespace-only lines (their count and first line numbers are given, so
            they can be removed deliberately).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sentence file {path} does not exist")
    lines = _read_lines(path)
    blank = [i for i, line in enumerate(lines, start=1) if not line.strip()]
    if blank:
        raise ValueError(
            f"{path} has {len(blank)} empty or whitespace-only line(s) (first at line(s) "
            f"{blank[:5]}); remove them, e.g. grep -v '^[[:space:]]*$'"
        )
    if not lines:
        raise ValueError(f"{path} holds no sentences")
    return lines
