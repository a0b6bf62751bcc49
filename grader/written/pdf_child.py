"""Run as a script by ``grader.written.pdf`` (``python -I pdf_child.py``), never imported by the
grader: reads one PDF on stdin and writes ``{"pages": [text, ...]}`` (or ``{"error": ...}``) as
JSON on stdout. It imports only pypdf and the standard library; the parent has set its CPU,
memory, file-size and time limits, since PDF parsers have had denial-of-service bugs."""
import io
import json
import sys

MAX_PAGES = 300
MAX_CHARS = 2_000_000


def main() -> None:
    data = sys.stdin.buffer.read()
    try:
        import logging

        logging.disable(logging.CRITICAL)   # pypdf logs its warnings about malformed files
        from pypdf import PdfReader

        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception:   # noqa: BLE001
                print(json.dumps({"error": "the PDF is encrypted (a password is needed to read it)"}))
                return
        pages, total, cut = [], 0, False
        for index, page in enumerate(reader.pages):
            if index >= MAX_PAGES or total >= MAX_CHARS:
                cut = True
                break
            try:
                text = page.extract_text() or ""
            except Exception as exc:   # noqa: BLE001 - one bad page: the others are still read
                text = ""
                sys.stderr.write(f"page {index + 1}: {type(exc).__name__}: {exc}\n"[:500])
            pages.append(text[:MAX_CHARS - total])
            total += len(pages[-1])
        print(json.dumps({"pages": pages, "cut": cut, "page_count": len(reader.pages)}))
    except Exception as exc:   # noqa: BLE001
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"[:500]}))


if __name__ == "__main__":
    main()
