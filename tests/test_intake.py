"""grader.intake: class folders built in tmp_path, as tables of (layout, expected outcome).

Everything here is data: intake never runs student code, and neither do these tests.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import signal
import stat
import unicodedata
import zipfile
from pathlib import Path

import pytest

from grader.intake import (
    NOTEBOOK_ENTRY,
    NOTEBOOK_MARKDOWN,
    IntakeError,
    IntakeLimits,
    convert_notebook,
    discover,
    markdown_of_notebook,
    prepare,
)
from grader.sandbox.loader import CELL_MARKER_RE

SOLUTION = "def elbo(x):\n    raise NotImplementedError\n"


@pytest.fixture(autouse=True, params=[True, False], ids=["dir_fd", "paths"])
def folder_access(request, monkeypatch):
    """Every test twice: folders read through file descriptors (POSIX) and by path (Windows)."""
    from grader.intake import safe

    monkeypatch.setattr(safe, "DIR_FD", request.param)


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------

def notebook(*cells: tuple[str, str], nbformat: int = 4) -> bytes:
    """A notebook from (cell_type, source) pairs."""
    return json.dumps({
        "nbformat": nbformat, "nbformat_minor": 5,
        "metadata": {"language_info": {"name": "python"}},
        "cells": [{"cell_type": kind, "metadata": {}, "source": source,
                   **({"outputs": [], "execution_count": None} if kind == "code" else {})}
                  for kind, source in cells],
    }).encode()


def zip_bytes(members: dict[str, bytes], symlinks: dict[str, str] | None = None,
              compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            archive.writestr(info, data, compress_type=compression)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()


def lying_zip() -> bytes:
    """A zip whose big.bin declares 100 bytes but holds 300 kB of zeros (both headers lie)."""
    raw = bytearray(zip_bytes({"solution.py": SOLUTION, "big.bin": b"\0" * 300_000}))
    for signature, name_length_at, name_at, size_at in ((b"PK\3\4", 26, 30, 22), (b"PK\1\2", 28, 46, 24)):
        index = raw.find(signature)
        while index >= 0:
            length = int.from_bytes(raw[index + name_length_at:index + name_length_at + 2], "little")
            if raw[index + name_at:index + name_at + length] == b"big.bin":
                raw[index + size_at:index + size_at + 4] = (100).to_bytes(4, "little")
            index = raw.find(signature, index + 4)
    return bytes(raw)


def build(root: Path, layout: dict[str, object]) -> Path:
    """Make ``root`` from {relative path: bytes | str | ("symlink", target) | ("fifo",) | {} }."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in layout.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, dict):
            path.mkdir(exist_ok=True)
        elif isinstance(content, tuple) and content[0] == "symlink":
            path.symlink_to(content[1])
        elif isinstance(content, tuple) and content[0] == "fifo":
            os.mkfifo(path)
        else:
            path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


@contextlib.contextmanager
def deadline(seconds: float):
    """Fail (instead of hanging forever) if the block blocks, e.g. on opening a FIFO."""
    def expire(signum, frame):
        raise TimeoutError(f"intake blocked for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_intake(tmp_path: Path, layout: dict[str, object], limits: IntakeLimits = IntakeLimits()):
    class_dir = build(tmp_path / "class", layout)
    with deadline(10):
        subs, notes = prepare(class_dir, tmp_path / "work", limits)
    return {sub.student: sub for sub in subs}, notes


def tree(workdir: Path) -> dict[str, bytes]:
    return {p.relative_to(workdir).as_posix(): p.read_bytes()
            for p in sorted(workdir.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------------------------
# Kinds, unwrapping, entries
# --------------------------------------------------------------------------------------------

NB_SIMPLE = notebook(("markdown", "# Homework"), ("code", "EPS = 1e-7\n"))

KIND_CASES = [
    # (id, layout, student, kind, mode, entry, files expected in workdir)
    ("py", {"alice.py": SOLUTION}, "alice", "py", "full", "solution.py", {"solution.py"}),
    ("ipynb", {"bob.ipynb": NB_SIMPLE}, "bob", "ipynb", "definitions", NOTEBOOK_ENTRY,
     {NOTEBOOK_ENTRY, NOTEBOOK_MARKDOWN}),
    ("zip", {"carol.zip": zip_bytes({"solution.py": SOLUTION, "helpers.py": "X = 1\n"})},
     "carol", "zip", "full", "solution.py", {"solution.py", "helpers.py"}),
    ("folder", {"dave/solution.py": SOLUTION, "dave/helpers.py": "X = 1\n", "dave/data/a.csv": "1,2\n"},
     "dave", "folder", "full", "solution.py", {"solution.py", "helpers.py", "data/a.csv"}),
    ("folder-single-py", {"erin/hw3.py": SOLUTION}, "erin", "folder", "full", "hw3.py", {"hw3.py"}),
    ("folder-notebook-with-helper", {"fay/hw.ipynb": NB_SIMPLE, "fay/util.py": "X = 1\n"},
     "fay", "folder", "definitions", NOTEBOOK_ENTRY, {NOTEBOOK_ENTRY, NOTEBOOK_MARKDOWN, "util.py"}),
    ("zip-unwrap", {"gus.zip": zip_bytes({"gus/hw3/solution.py": SOLUTION, "gus/hw3/h.py": "X = 1\n",
                                          "__MACOSX/gus/._solution.py": b"\0\1"})},
     "gus", "zip", "full", "solution.py", {"solution.py", "h.py"}),
    ("folder-unwrap", {"hal/submission/solution.py": SOLUTION, "hal/.DS_Store": b"\0"},
     "hal", "folder", "full", "solution.py", {"solution.py"}),
    ("zip-notebook", {"ida.zip": zip_bytes({"ida/hw.ipynb": NB_SIMPLE})},
     "ida", "zip", "definitions", NOTEBOOK_ENTRY, {NOTEBOOK_ENTRY, NOTEBOOK_MARKDOWN}),
]


@pytest.mark.parametrize("layout, student, kind, mode, entry, files",
                         [case[1:] for case in KIND_CASES], ids=[case[0] for case in KIND_CASES])
def test_each_kind_is_prepared(tmp_path, layout, student, kind, mode, entry, files):
    subs, _ = run_intake(tmp_path, layout)
    sub = subs[student]
    assert (sub.error, sub.kind, sub.mode, sub.entry) == (None, kind, mode, entry)
    assert set(tree(sub.workdir)) == files
    assert sub.workdir.parent == tmp_path / "work"
    assert sub.source == tmp_path / "class" / next(iter(layout)).split("/")[0]


def test_unwrap_and_stray_notes(tmp_path):
    subs, _ = run_intake(tmp_path, dict(KIND_CASES[6][1]))
    assert subs["gus"].notes == ["ignored stray entry __MACOSX",
                                 "unwrapped the top-level folder gus/",
                                 "unwrapped the top-level folder hw3/"]


def test_notebook_entry_in_folder_is_converted_not_copied(tmp_path):
    subs, _ = run_intake(tmp_path, {"fay/hw.ipynb": NB_SIMPLE, "fay/util.py": "X = 1\n"})
    files = tree(subs["fay"].workdir)
    assert "hw.ipynb" not in files
    assert b"# %% cell 2\nEPS = 1e-7\n" in files[NOTEBOOK_ENTRY]
    assert files[NOTEBOOK_MARKDOWN] == b"<!-- cell 1 -->\n# Homework\n"


# --------------------------------------------------------------------------------------------
# Ids, conflicts, strays
# --------------------------------------------------------------------------------------------

NFC = unicodedata.normalize("NFC", "José")
NFD = unicodedata.normalize("NFD", "José")


def test_ids_are_any_text(tmp_path):
    layout = {"José Ñúñez.py": SOLUTION, "--out.py": SOLUTION, "a b.ipynb": NB_SIMPLE,
              "李 雷/solution.py": SOLUTION, f"{NFD}.py": SOLUTION}
    subs, notes = run_intake(tmp_path, layout)
    assert list(subs) == sorted(["José Ñúñez", "--out", "a b", "李 雷", NFC])
    assert notes == []
    for sub in subs.values():
        assert sub.error is None
        assert sub.workdir.parent == tmp_path / "work"
        assert sub.workdir.name.isascii() and not sub.workdir.name.startswith(("-", "."))
    assert subs["--out"].workdir.name.startswith("out-")
    assert len({sub.workdir for sub in subs.values()}) == len(subs)


CONFLICT_CASES = [
    ({"bob.py": SOLUTION, "bob.ipynb": NB_SIMPLE}, "bob", "conflicting submissions: bob.ipynb, bob.py"),
    ({"bob/solution.py": SOLUTION, "bob.zip": zip_bytes({"solution.py": SOLUTION})}, "bob",
     "conflicting submissions: bob.zip, bob/"),
    ({f"{NFC}.py": SOLUTION, f"{NFD}.py": SOLUTION}, NFC,
     f"conflicting submissions: {NFD}.py, {NFC}.py (the same name in different Unicode normalisations)"),
]


@pytest.mark.parametrize("layout, student, message", CONFLICT_CASES, ids=["py+ipynb", "folder+zip", "nfc+nfd"])
def test_same_id_is_a_conflict(tmp_path, layout, student, message):
    subs, _ = run_intake(tmp_path, {**layout, "zed.py": SOLUTION})
    sub = subs[student]
    assert (sub.error, sub.conflict, sub.workdir, sub.entry) == (message, True, None, None)
    assert subs["zed"].error is None and not subs["zed"].conflict


def test_stray_and_unknown_top_level_entries(tmp_path):
    layout = {".DS_Store": b"\0", "__MACOSX/._x": b"", "Thumbs.db": b"", ".ipynb_checkpoints/a.ipynb": "{}",
              "__pycache__/x.pyc": b"", ".hidden.py": "x", "notes.docx": "hi", "grades.tar.gz": b"",
              "README.md": "# class of 2026", "ann.py": SOLUTION}
    subs, notes = run_intake(tmp_path, layout)
    assert list(subs) == ["ann"]
    expected = ("(expected NAME.py, NAME.ipynb, NAME.zip or a folder NAME/, and written answers as NAME.md, "
                "NAME.txt, NAME.tex or NAME.pdf)")
    assert notes == [
        "ignored stray entry .DS_Store",
        "ignored stray entry .hidden.py",
        "ignored stray entry .ipynb_checkpoints",
        "ignored README.md: the class folder's own description, not a submission",
        "ignored stray entry Thumbs.db",
        "ignored stray entry __MACOSX",
        "ignored stray entry __pycache__",
        f"ignored grades.tar.gz: not a submission {expected}",
        f"ignored notes.docx: not a submission {expected}",
    ]


def test_strays_and_compiled_files_inside_a_folder_are_dropped(tmp_path):
    layout = {"kim/solution.py": SOLUTION, "kim/.ipynb_checkpoints/solution-checkpoint.py": "x",
              "kim/__pycache__/solution.cpython-311.pyc": b"\0", "kim/helper.so": b"\x7fELF",
              "kim/.env": "SECRET=1", "kim/Thumbs.db": b""}
    subs, _ = run_intake(tmp_path, layout)
    assert set(tree(subs["kim"].workdir)) == {"solution.py"}
    assert subs["kim"].notes == ["ignored stray entry .env", "ignored stray entry .ipynb_checkpoints",
                                 "ignored stray entry Thumbs.db", "ignored stray entry __pycache__",
                                 "ignored compiled file helper.so (only source files are graded)"]


# --------------------------------------------------------------------------------------------
# Links and special files: never followed, never opened
# --------------------------------------------------------------------------------------------

def test_links_and_fifos_are_refused_without_blocking(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    layout = {
        "lee/solution.py": SOLUTION,
        "lee/steal.txt": ("symlink", str(secret)),
        "lee/linkdir": ("symlink", str(tmp_path)),
        "lee/pipe.py": ("fifo",),
        "max.py": ("fifo",),
        "ned.py": ("symlink", str(secret)),
        "ned2.zip": ("symlink", str(secret)),
        "otto": ("symlink", str(tmp_path)),
        "pipe": ("fifo",),
    }
    subs, notes = run_intake(tmp_path, layout)
    assert subs["lee"].error is None
    assert set(tree(subs["lee"].workdir)) == {"solution.py"}
    assert subs["lee"].notes == ["refused linkdir: it is a symbolic link, not a regular file",
                                 "refused pipe.py: it is a FIFO (named pipe), not a regular file",
                                 "refused steal.txt: it is a symbolic link, not a regular file"]
    assert subs["max"].error == "max.py is a FIFO (named pipe): refused (submit a regular file or folder)"
    assert subs["ned"].error == "ned.py is a symbolic link: refused (submit a regular file or folder)"
    assert subs["ned2"].error == "ned2.zip is a symbolic link: refused (submit a regular file or folder)"
    assert notes == [
        "refused otto: it is a symbolic link (expected NAME.py, NAME.ipynb, NAME.zip or a folder NAME/)",
        "refused pipe: it is a FIFO (named pipe) (expected NAME.py, NAME.ipynb, NAME.zip or a folder NAME/)",
    ]
    assert all(b"top secret" not in data for sub in subs.values() if sub.workdir
               for data in tree(sub.workdir).values())


# --------------------------------------------------------------------------------------------
# Bad input: one clear message each
# --------------------------------------------------------------------------------------------

BOMB = b"\0" * (12 * 1024 * 1024)

ERROR_CASES = [
    # (id, entry name, content, expected error)
    ("not-utf8", "pat.py", "x = 1\ny = 'caf".encode() + b"\xe9'\n",
     "pat.py is not UTF-8: byte 0xe9 at byte offset 14 (line 2, column 9) cannot be decoded (invalid "
     "continuation byte); save the file as UTF-8"),
    ("utf16", "pat.py", "x = 1\n".encode("utf-16"),
     "pat.py is not UTF-8: byte 0xff at byte offset 0 (line 1, column 1) cannot be decoded (invalid start "
     "byte); save the file as UTF-8"),
    ("nul", "pat.py", b"x = 1\n\0\n",
     "pat.py contains a NUL byte at byte offset 6 (line 2): it is not a text file (saved as UTF-16?)"),
    ("empty", "pat.py", b"", "pat.py is empty"),
    ("blank", "pat.py", b"\n   \n", "pat.py is empty"),
    ("too-large", "pat.py", b"#" * (5 * 1024 * 1024 + 1),
     "pat.py is 5.0 MiB, over the limit of 5 MiB per file"),
    ("nb-invalid-json", "pat.ipynb", b'{"cells": [}',
     "pat.ipynb is not valid JSON: Expecting value at line 1, column 12"),
    ("nb-not-object", "pat.ipynb", b"[1, 2]",
     "pat.ipynb is not a Jupyter notebook: the JSON is list, not an object with 'cells'"),
    ("nb-no-format", "pat.ipynb", b'{"cells": []}',
     "pat.ipynb is not a Jupyter notebook: the JSON has no 'nbformat' field"),
    ("nb-v3", "pat.ipynb", notebook(("code", "x = 1"), nbformat=3),
     "pat.ipynb has notebook format version 3; version 4 is expected (open it in a current "
     "Jupyter and save it again)"),
    ("nb-bad-cell", "pat.ipynb", b'{"nbformat": 4, "cells": [{"cell_type": "code"}]}',
     "pat.ipynb is not a valid notebook: cell 1's 'source' is not text"),
    ("nb-no-code", "pat.ipynb", notebook(("markdown", "# only words")),
     "pat.ipynb has no code: none of its 1 cells is a code cell with content"),
    ("zip-invalid", "pat.zip", b"PK\3\4 not really",
     "pat.zip is not a valid zip archive: File is not a zip file"),
    ("zip-traversal", "pat.zip", zip_bytes({"solution.py": SOLUTION, "../../evil.py": "x"}),
     "pat.zip: member '../../evil.py' points outside the archive (path traversal with '..'): refused"),
    ("zip-traversal-backslash", "pat.zip", zip_bytes({"a\\..\\..\\evil.py": "x"}),
     "pat.zip: member 'a\\\\..\\\\..\\\\evil.py' points outside the archive (path traversal with '..'): refused"),
    ("zip-absolute", "pat.zip", zip_bytes({"/etc/cron.d/x": "x"}),
     "pat.zip: member '/etc/cron.d/x' has an absolute path: refused"),
    ("zip-drive", "pat.zip", zip_bytes({"C:/Users/x.py": "x"}),
     "pat.zip: member 'C:/Users/x.py' has an absolute path: refused"),
    ("zip-symlink", "pat.zip", zip_bytes({"solution.py": SOLUTION}, symlinks={"data": "/etc/passwd"}),
     "pat.zip: member 'data' is a symbolic link: refused"),
    ("zip-bomb", "pat.zip", zip_bytes({"solution.py": SOLUTION, "weights.bin": BOMB}),
     "pat.zip: member weights.bin would expand to 12.0 MiB from 12 KiB (ratio 1029:1, over the "
     "limit of 100:1): refused as a possible zip bomb"),
    ("zip-lying-size", "pat.zip", lying_zip(),
     "pat.zip: member big.bin cannot be extracted: Bad CRC-32 for file 'big.bin'"),
    ("zip-encrypted-flag", "pat.zip", zip_bytes({"solution.py": SOLUTION}).replace(
        b"PK\1\2\x14\x03\x14\x00\x00\x00", b"PK\1\2\x14\x03\x14\x00\x01\x00"),
     "pat.zip: member solution.py is encrypted: submit an archive without a password"),
    ("zip-empty", "pat.zip", zip_bytes({}), "pat.zip holds no .py or .ipynb file at its top"),
    ("folder-nothing", "pat/readme.txt", b"hello", "pat/ holds no .py or .ipynb file at its top"),
    ("zip-code-too-deep", "pat.zip", zip_bytes({"README.txt": "hi", "src/solution.py": SOLUTION}),
     "pat.zip holds no .py or .ipynb file at its top (found src/solution.py deeper: put "
     "solution.py at the top)"),
]


@pytest.mark.parametrize("name, content, message", [case[1:] for case in ERROR_CASES],
                         ids=[case[0] for case in ERROR_CASES])
def test_bad_input_gets_one_clear_error(tmp_path, name, content, message):
    subs, _ = run_intake(tmp_path, {name: content, "zed.py": SOLUTION})
    assert subs["pat"].error == message
    assert subs["pat"].workdir is None and subs["pat"].entry is None and not subs["pat"].conflict
    assert subs["zed"].error is None


CANDIDATE_CASES = [
    ({"a.py": "x = 1\n", "b.py": "y = 2\n"}, "a.py, b.py"),
    ({"hw.ipynb": NB_SIMPLE, "hw.py": "y = 2\n"}, "hw.ipynb, hw.py"),  # a notebook and its export
    ({"hw1.ipynb": NB_SIMPLE, "hw2.ipynb": NB_SIMPLE}, "hw1.ipynb, hw2.ipynb"),
]


@pytest.mark.parametrize("files, listed", CANDIDATE_CASES, ids=["two-py", "notebook+export", "two-notebooks"])
def test_several_candidates_without_solution_py(tmp_path, files, listed):
    subs, _ = run_intake(tmp_path, {f"pat/{name}": data for name, data in files.items()})
    assert subs["pat"].error == f"pat/ holds several candidate files and no solution.py: {listed}"


def test_solution_py_wins_and_a_lone_notebook_keeps_its_helpers(tmp_path):
    layout = {"pat/solution.py": SOLUTION, "pat/hw.ipynb": NB_SIMPLE, "pat/other.py": "x = 1\n",
              "quin/hw.ipynb": NB_SIMPLE, "quin/a.py": "x = 1\n", "quin/b.py": "y = 2\n"}
    subs, _ = run_intake(tmp_path, layout)
    assert (subs["pat"].entry, subs["pat"].mode) == ("solution.py", "full")
    assert subs["pat"].notes == ["graded solution.py; not graded: hw.ipynb"]
    assert (subs["quin"].entry, subs["quin"].mode) == (NOTEBOOK_ENTRY, "definitions")
    assert set(tree(subs["quin"].workdir)) == {NOTEBOOK_ENTRY, NOTEBOOK_MARKDOWN, "a.py", "b.py"}


def test_zip_limits(tmp_path):
    limits = IntakeLimits(member_count=3, total_size_mib=0.01)
    layout = {"many.zip": zip_bytes({f"m{i}.py": "x = 1\n" for i in range(5)}),
              "big.zip": zip_bytes({"solution.py": "#" * 20_000}, compression=zipfile.ZIP_STORED),
              "deep.zip": zip_bytes({"/".join(["d"] * 20) + "/solution.py": SOLUTION})}
    subs, _ = run_intake(tmp_path, layout, limits)
    assert subs["many"].error == "many.zip declares 5 members, over the limit of 3"
    assert subs["big"].error == "big.zip holds more than 0.01 MiB, over the limit per submission"
    assert subs["deep"].error == ("deep.zip: " + "/".join(["d"] * 20) + "/solution.py is more than 16 "
                                  "levels deep, over the limit")


def test_folder_limits(tmp_path):
    limits = IntakeLimits(member_count=5, path_depth=3)
    layout = {**{f"many/m{i}.py": "x = 1\n" for i in range(6)},
              "deep/solution.py": SOLUTION, "deep/a/b/c/d.txt": "x"}
    subs, _ = run_intake(tmp_path, layout, limits)
    assert subs["many"].error == "many/ holds more than 5 files and folders, over the limit"
    assert subs["deep"].error == "deep/: a/b/c/... is more than 3 levels deep, over the limit"


def test_oversized_data_file_is_dropped_oversized_code_is_an_error(tmp_path):
    limits = IntakeLimits(file_size_mib=0.01)
    layout = {"ray/solution.py": SOLUTION, "ray/data.csv": "1," * 10_000,
              "sam/solution.py": SOLUTION, "sam/helper.py": "#" * 20_000}
    subs, _ = run_intake(tmp_path, layout, limits)
    assert subs["ray"].error is None
    assert subs["ray"].notes == ["dropped data.csv: 20 KiB, over the limit of 0.01 MiB per file"]
    assert subs["sam"].error == "sam/: helper.py is 20 KiB, over the limit of 0.01 MiB per file"


def test_limits_are_validated():
    with pytest.raises(ValueError, match="IntakeLimits.member_count must be a positive number, got 0"):
        IntakeLimits(member_count=0)


def test_missing_class_folder(tmp_path):
    with pytest.raises(IntakeError, match="does not exist"):
        prepare(tmp_path / "nope", tmp_path / "work")


# --------------------------------------------------------------------------------------------
# Notebook conversion: the exact text
# --------------------------------------------------------------------------------------------

def test_notebook_conversion_exact_text():
    data = notebook(
        ("markdown", ["# Homework 3\n", "Some *words*."]),
        ("code", ["%matplotlib inline\n", "%load_ext autoreload\n", "import torch\n",
                  "!pip install wandb\n", "files = !ls\n", "torch.zeros?\n", "??torch\n",
                  "x = 1  # really?"]),
        ("code", "%%time\nmodel = train()\n%time y = 2"),
        ("code", "%%bash\necho hi\nls"),
        ("code", "%%writefile helper.py\nX = 1"),
        ("code", "for i in range(3):\n    !echo $i\n    print(i)\n"
                 "s = '''\n!not a shell escape\n'''\nd = {\n    'a': 1,\n}\n%who"),
        ("code", "# %% cell 9\nz = 3"),
        ("code", ""),
        ("raw", "raw text"),
        ("markdown", "The end."),
    )
    python, markdown, notes = convert_notebook(data)
    assert python == (
        "# Generated by the grader from a Jupyter notebook: its code cells in order, with IPython\n"
        "# syntax (magics, shell escapes, help) commented out. '# %% cell N' starts the notebook's\n"
        "# cell N (counting every cell from 1).\n"
        "\n# %% cell 2\n"
        "# %matplotlib inline\n"
        "# %load_ext autoreload\n"
        "import torch\n"
        "# !pip install wandb\n"
        "# files = !ls\n"
        "# torch.zeros?\n"
        "# ??torch\n"
        "x = 1  # really?\n"
        "\n# %% cell 3\n"
        "# %%time\n"
        "model = train()\n"
        "# %time y = 2\n"
        "\n# %% cell 4\n"
        "# %%bash\n"
        "# echo hi\n"
        "# ls\n"
        "\n# %% cell 5\n"
        "# %%writefile helper.py\n"
        "# X = 1\n"
        "\n# %% cell 6\n"
        "for i in range(3):\n"
        "    pass  # !echo $i\n"
        "    print(i)\n"
        "s = '''\n"
        "!not a shell escape\n"
        "'''\n"
        "d = {\n"
        "    'a': 1,\n"
        "}\n"
        "# %who\n"
        "\n# %% cell 7\n"
        "# # %% cell 9\n"
        "z = 3\n"
    )
    assert markdown == "<!-- cell 1 -->\n# Homework 3\nSome *words*.\n\n<!-- cell 10 -->\nThe end.\n"
    assert notes == [
        "notebook: commented out 3 shell escapes, 4 line magics, 2 help lines; commented out 2 cells "
        "(%%bash, %%writefile); kept the body of 1 cell (%%time); dropped 1 raw cell; escaped 1 line "
        "that read as a cell marker",
        "notebook: 2 markdown cells saved to notebook_markdown.md",
    ]
    # every converted line sits at its cell's line: marker line + M is line M of cell N
    lines = python.splitlines()
    marker = next(i for i, line in enumerate(lines) if CELL_MARKER_RE.match(line) and line.endswith(" 6"))
    assert lines[marker + 3] == "    print(i)"


def test_notebook_notes_reach_the_submission(tmp_path):
    subs, _ = run_intake(tmp_path, {"una.ipynb": notebook(("code", "!ls\nx = 1"))})
    assert subs["una"].notes == ["notebook: commented out 1 shell escape"]


# --------------------------------------------------------------------------------------------
# Hashes: stable, independent of the archive's layout
# --------------------------------------------------------------------------------------------

def test_sha256_is_stable(tmp_path):
    files = {"solution.py": SOLUTION, "helpers.py": "X = 1\n"}
    layout = {
        "one.py": SOLUTION,
        "two/solution.py": SOLUTION, "two/helpers.py": "X = 1\n",
        "three.zip": zip_bytes(files),
        "four.zip": zip_bytes({f"wrapped/{k}": v for k, v in reversed(files.items())},
                              compression=zipfile.ZIP_STORED),
    }
    first, _ = run_intake(tmp_path / "a", layout)
    again, _ = run_intake(tmp_path / "b", layout)
    assert {s: sub.sha256 for s, sub in first.items()} == {s: sub.sha256 for s, sub in again.items()}
    assert first["one"].sha256 == hashlib.sha256(SOLUTION.encode()).hexdigest()
    assert first["two"].sha256 == first["three"].sha256 == first["four"].sha256
    changed, _ = run_intake(tmp_path / "c", {"two/solution.py": SOLUTION, "two/helpers.py": "X = 2\n"})
    assert changed["two"].sha256 != first["two"].sha256


def test_discover_groups_by_normalised_id(tmp_path):
    build(tmp_path, {f"{NFD}.py": SOLUTION, f"{NFC}.zip": b"", "x/solution.py": SOLUTION})
    groups, notes = discover(tmp_path)
    assert list(groups) == [NFC, "x"]
    assert [(e.name, e.kind) for e in groups[NFC]] == [(f"{NFD}.py", "py"), (f"{NFC}.zip", "zip")]
    assert notes == []


def test_prepare_twice_replaces_the_workdir(tmp_path):
    class_dir = build(tmp_path / "class", {"amy.py": SOLUTION})
    first, _ = prepare(class_dir, tmp_path / "work")
    (first[0].workdir / "leftover.txt").write_text("old")
    second, _ = prepare(class_dir, tmp_path / "work")
    assert second[0].workdir == first[0].workdir
    assert set(tree(second[0].workdir)) == {"solution.py"}


def test_the_cell_marker_has_one_home():
    """The marker written before each notebook cell is derived from the loader's pattern, and both
    the loader (cell positions) and the written answers' extraction read it back."""
    from grader.intake import cells
    from grader.sandbox import loader
    from grader.written import extract

    assert cells.CELL_MARKER_RE is loader.CELL_MARKER_RE is extract.CODE_CELL_RE
    assert cells.cell_marker(7) == "# %% cell 7" and cells.cell_number("# %% cell 7  ") == 7
    assert cells.cell_number("# %% cell x") is None
    python, _, _ = convert_notebook(notebook(("code", "x = 1"), ("markdown", "m"), ("code", "y = (\n")))
    assert loader.describe_line(python, python.split("\n").index(cells.cell_marker(3)) + 2) == "cell 3, line 1"
    for path in Path(cells.__file__).parent.parent.rglob("*.py"):   # no other spelling of the marker in the grader
        if path.name not in ("cells.py", "loader.py"):
            assert not re.search(r"%% cell \{|%% cell \(\\\\d|%% cell \(\\d", path.read_text("utf-8")), path
    # the markdown cells' marker too: written by the intake, read back by the extraction
    assert extract.CELL_COMMENT_RE is cells.MARKDOWN_CELL_MARKER_RE
    assert cells.markdown_cell_marker(4) == "<!-- cell 4 -->" and cells.markdown_cell_number("<!-- cell 4 -->") == 4
    _, markdown, _ = convert_notebook(notebook(("code", "x = 1"), ("markdown", "m")))
    assert markdown.split("\n")[0] == cells.markdown_cell_marker(2)
    assert markdown_of_notebook(notebook(("markdown", "only prose"))) == "<!-- cell 1 -->\nonly prose\n"
    for path in Path(cells.__file__).parent.parent.rglob("*.py"):
        if path.name != "cells.py":
            assert "<!-- cell {" not in path.read_text("utf-8") and "<!-- cell (" not in path.read_text("utf-8"), path


# --------------------------------------------------------------------------------------------
# Write-ups handed in beside the code
# --------------------------------------------------------------------------------------------

def test_code_and_writeups_of_one_student_form_one_submission(tmp_path):
    layout = {"alice.py": SOLUTION, "alice.pdf": b"%PDF-1.4 fake", "alice.md": "## Q1\nyes\n",
              "bob.py": SOLUTION, "bob.ipynb": notebook(("code", "x = 1")), "bob.pdf": b"%PDF",
              "cleo.tex": "\\section*{1.} text", "README.txt": "the TA's notes",
              # Canvas: one file per upload, joined by the user id
              "smithjohn_12345_67890_solution.py": SOLUTION, "smithjohn_12345_67891_report.pdf": b"%PDF-1.4",
              "doe_777_1_answers.md": "## Q1\nalone\n"}
    subs, notes = run_intake(tmp_path, layout)
    assert sorted(subs) == ["alice", "bob", "cleo", "doe_777_1_answers", "smithjohn_12345_67890_solution"]
    alice = subs["alice"]
    assert alice.error is None and alice.entry == "solution.py" and alice.kind == "py"
    assert alice.sha256 == hashlib.sha256(SOLUTION.encode()).hexdigest()   # of the code: a new report regrades nothing
    assert alice.writeups == ["alice.md", "alice.pdf"] and (alice.writeup_dir / "alice.pdf").read_bytes() == b"%PDF-1.4 fake"
    assert sorted(p.name for p in alice.workdir.iterdir()) == ["solution.py"]   # the sandbox never sees them
    assert "write-up alice.pdf read for the written answers" in alice.notes
    assert subs["bob"].conflict and subs["bob"].error == "conflicting submissions: bob.ipynb, bob.py"
    cleo = subs["cleo"]   # only a write-up: a load error, and the write-up is kept for marking
    assert cleo.error == "no code was submitted, only the written answers in cleo.tex"
    assert cleo.workdir is None and cleo.writeups == ["cleo.tex"] and cleo.kind == "writeup"
    canvas = subs["smithjohn_12345_67890_solution"]
    assert canvas.writeups == ["smithjohn_12345_67891_report.pdf"]
    assert any("the same Canvas user id 12345 as smithjohn_12345_67890_solution" in n for n in canvas.notes)
    assert subs["doe_777_1_answers"].writeups == ["doe_777_1_answers.md"]   # no code of user 777
    assert "ignored README.txt: the class folder's own description, not a submission" in notes


def test_pdfs_inside_a_folder_or_zip_are_kept_out_of_the_sandbox_copy(tmp_path):
    big = b"%PDF-1.4\n" + b"0" * (6 * 1024 * 1024)   # over file_size_mib, under writeup_size_mib
    layout = {"dan/solution.py": SOLUTION, "dan/report.pdf": big, "dan/notes.md": "## Q1\nx\n",
              "eve.zip": zip_bytes({"hw/solution.py": SOLUTION.encode(), "hw/answers/report.pdf": b"%PDF-1.4"})}
    subs, _ = run_intake(tmp_path, layout)
    dan, eve = subs["dan"], subs["eve"]
    assert dan.error is None and dan.writeups == ["report.pdf"] and (dan.writeup_dir / "report.pdf").read_bytes() == big
    assert sorted(p.name for p in dan.workdir.iterdir()) == ["notes.md", "solution.py"]
    assert eve.writeups == ["answers/report.pdf"] and not (eve.workdir / "answers").exists()


def test_a_writeup_that_cannot_be_read_is_a_note_and_the_code_is_graded(tmp_path):
    layout = {"fay.py": SOLUTION, "fay.pdf": b"%PDF" + b"0" * 2048}
    subs, _ = run_intake(tmp_path, layout, IntakeLimits(writeup_size_mib=0.001))
    fay = subs["fay"]
    assert fay.error is None and fay.writeup_dir is None
    assert any(n.startswith("write-up not read: fay.pdf is 2 KiB, over the limit of 0.001 MiB per write-up") for n in fay.notes)
