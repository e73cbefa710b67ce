"""Writes the PDFs the document tests read: text.pdf (one page with known text) and bomb.pdf
(one page whose content stream inflates to 1.5 GiB of spaces from about 1.5 MB).

usage: make_pdfs.py DIR
"""
import sys
import zlib
from pathlib import Path


def pdf(content: bytes, filtered: bool) -> bytes:
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d%s >>\nstream\n" % (len(content), b" /Filter /FlateDecode" if filtered else b"")
        + content
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    text = b"BT /F1 12 Tf 72 720 Td (The zeta-marker line of a PDF.) Tj 0 -16 Td (A second line.) Tj ET"
    (out / "text.pdf").write_bytes(pdf(text, False))
    packer = zlib.compressobj(9)
    chunk = b" " * (64 << 20)
    parts = [packer.compress(chunk) for _ in range(24)]
    parts.append(packer.flush())
    (out / "bomb.pdf").write_bytes(pdf(b"".join(parts), True))


main()
