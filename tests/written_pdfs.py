"""Small, valid PDFs written by hand for the tests (no PDF library needed to make them): pages of
text lines in Helvetica, and a "scan": a page that is only an image, with no text layer.
``python -m tests.written_pdfs`` rewrites the PDFs of tests/fixtures/written/ and of the example
class (submissions/: bruno's report and dmitri's scan)."""
from __future__ import annotations

import zlib
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "written"
CLASS = Path(__file__).resolve().parents[1] / "submissions"


def _escape(text: str) -> bytes:
    data = text.encode("cp1252", "replace")
    return data.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _document(page_streams: list[bytes], with_font: bool = True, image: bytes | None = None) -> bytes:
    objects: list[bytes] = []
    count = len(page_streams)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(count))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode())
    font_id = 3 + 2 * count
    image_id = font_id + 1
    for i, stream in enumerate(page_streams):
        resources = f"/Font << /F1 {font_id} 0 R >>" if with_font else ""
        if image is not None:
            resources += f" /XObject << /Im1 {image_id} 0 R >>"
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << {resources} >> "
                       f"/Contents {4 + 2 * i} 0 R >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    if image is not None:
        packed = zlib.compress(image)
        objects.append(b"<< /Type /XObject /Subtype /Image /Width 64 /Height 64 /ColorSpace /DeviceGray "
                       b"/BitsPerComponent 8 /Filter /FlateDecode /Length %d >>\nstream\n" % len(packed)
                       + packed + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def text_pdf(pages: list[list[str]]) -> bytes:
    """A PDF with one page per list of lines."""
    streams = []
    for lines in pages:
        body = b"BT /F1 11 Tf 14 TL 56 760 Td " + b" ".join(b"(" + _escape(line) + b") Tj T*" for line in lines) + b" ET"
        streams.append(body)
    return _document(streams)


def scanned_pdf(pages: int = 2) -> bytes:
    """Pages that only paint an image: what a scanner or a phone app produces."""
    pixels = bytes((x * 7 + y * 3) % 256 for y in range(64) for x in range(64))
    stream = b"q 480 0 0 640 66 76 cm /Im1 Do Q"
    return _document([stream] * pages, with_font=False, image=pixels)


REPORT_PAGES = [
    ["Homework 3: generative models", "A. Student (as1234), B. Student (bs5678)", "",
     "Part I. Adversarial networks", "1. What is a generative model?",
     "A generative model is fitted to samples x_1 ... x_N from an unknown p_data, so that we can draw",
     "new samples or evaluate p_model(x). Explicit models write p_model(x; theta) down: FVBNs exactly,",
     "VAEs approximately through the ELBO; a GAN only has a sampler x = G(z) and is implicit."],
    ["2. How do GANs differ from autoencoders and VAEs?",
     "A GAN plays a two-player game: D is a classifier, G tries to fool it. A VAE maximises the ELBO,",
     "E_q[log p(x|z)] - KL(q(z|x) || p(z)), a lower bound on log p(x) by Jensen's inequality. An FVBN",
     "maximises the exact likelihood but samples one pixel at a time. GANs suffer mode collapse.",
     "3. Why the non-saturating loss?",
     "Early in training D(G(z)) is near 0, so log(1 - D(G(z))) saturates and its gradient vanishes;",
     "-log D(G(z)) has gradient -(1 - sigmoid(l)), close to -1 there. The game is no longer zero-sum."],
]

# submissions/bruno_pdf_report.pdf: a report typeset with LaTeX's numbered sections, as its text layer reads
BRUNO_PAGES = [
    ["Homework 3: Generative Models", "Bruno Almeida", "November 2026", "",
     "1 Generative modelling: explicit and implicit densities",
     "Generative modelling fits a model distribution p_theta(x) to examples drawn from an unknown",
     "p_data(x), so that new examples can be produced and, for some models, the probability of an",
     "input can be computed. Explicit models give a formula for p_theta(x): tractable ones such as",
     "FVBNs compute it exactly with the chain rule, approximate ones such as the VAE only reach a",
     "lower bound. Implicit models, GANs among them, only describe how to sample x = G(z)."],
    ["2 GANs compared with autoencoders, VAEs and FVBNs",
     "Plain autoencoders minimise a reconstruction error and have no prior over z. The VAE maximises",
     "ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z)) <= log p(x), a bound by Jensen's inequality. GANs",
     "give no likelihood and train by a minimax game that can oscillate or collapse to few modes;",
     "FVBNs give the exact likelihood but generate one dimension at a time.",
     "3 Why the non-saturating generator loss",
     "For a fake with logit l, d/dl of (1/2) log(1 - sigmoid(l)) is -(1/2) sigmoid(l), which is tiny",
     "when D rejects the fake; -(1/2) log sigmoid(l) has derivative -(1/2)(1 - sigmoid(l)), near -1/2.",
     "2 consequences: G keeps learning early on, and the game is no longer zero-sum."],
]
#: the example class's PDFs (paths relative to submissions/): a report with a text layer, and a scan
EXAMPLE_CLASS_PDFS = {
    "bruno_pdf_report.pdf": lambda: text_pdf(BRUNO_PAGES),
    "dmitri_scanned/answers_scan.pdf": lambda: scanned_pdf(3),
}


def write_fixtures() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    (FIXTURES / "pdf_report.pdf").write_bytes(text_pdf(REPORT_PAGES))
    (FIXTURES / "scanned_report.pdf").write_bytes(scanned_pdf())
    for rel, make in EXAMPLE_CLASS_PDFS.items():
        (CLASS / rel).write_bytes(make())


if __name__ == "__main__":
    write_fixtures()
