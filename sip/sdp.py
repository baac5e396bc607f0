"""Codec choice for an incoming offer. Pure text in, text out.

pjmedia's SDP negotiator, as built, follows the offerer's codec order: a trunk offering PCMU before
G.722 gets PCMU even though standin prefers G.722 (16 kHz speech for the recogniser). Before the answer
is made, `narrow_to_preferred` cuts standin's local SDP down to the single codec it likes best among
those offered (plus telephone-event for DTMF), so the negotiator can only land on that one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# (encoding, RTP clock rate) as SDP writes them; G.722 says 8000 for historical reasons (RFC 3551).
PREFERENCE: tuple[tuple[str, int], ...] = (("G722", 8000), ("PCMU", 8000), ("PCMA", 8000),
                                           ("L16", 16000), ("L16", 8000), ("L16", 44100))
_STATIC = {0: ("PCMU", 8000), 8: ("PCMA", 8000), 9: ("G722", 8000), 10: ("L16", 44100), 11: ("L16", 44100)}
_PT_ATTR = re.compile(r"^a=(rtpmap|fmtp|rtcp-fb):(\d+)[ \t]")


def narrow_to_preferred(local: str, remote: str,
                        preference: Sequence[tuple[str, int]] = PREFERENCE) -> str:
    """`local` with its first audio m-line reduced to the preferred codec both sides have (and DTMF);
    `local` unchanged when the SDPs cannot be read or have no preferred codec in common."""
    remote_codecs = _audio_codecs(remote.splitlines())
    lines = local.splitlines()
    local_codecs = _audio_codecs(lines)
    if remote_codecs is None or local_codecs is None:
        return local
    offered = set(remote_codecs.values())
    choice = next((c for c in preference if c in offered and c in local_codecs.values()), None)
    if choice is None:
        return local
    keep = {pt for pt, codec in local_codecs.items() if codec == choice or codec[0] == "TELEPHONE-EVENT"}
    section = _audio_section(lines)
    assert section is not None  # _audio_codecs found it
    start, end = section
    out = lines[:start]
    m_fields = lines[start].split()
    out.append(" ".join(m_fields[:3] + [pt for pt in m_fields[3:] if pt.isdigit() and int(pt) in keep]))
    for line in lines[start + 1:end]:
        attr = _PT_ATTR.match(line)
        if attr is None or int(attr.group(2)) in keep:
            out.append(line)
    out.extend(lines[end:])
    return "\r\n".join(out) + "\r\n"


def _audio_section(lines: list[str]) -> tuple[int, int] | None:
    for i, line in enumerate(lines):
        if line.startswith("m=audio "):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("m=")), len(lines))
            return i, end
    return None


def _audio_codecs(lines: list[str]) -> dict[int, tuple[str, int]] | None:
    """Payload type -> (ENCODING, clock) for the first audio m-line; None when there is none."""
    section = _audio_section(lines)
    if section is None:
        return None
    start, end = section
    fields = lines[start].split()
    if len(fields) < 4:
        return None
    pts = [int(f) for f in fields[3:] if f.isdigit()]
    codecs = {pt: _STATIC[pt] for pt in pts if pt in _STATIC}
    for line in lines[start + 1:end]:
        m = re.match(r"^a=rtpmap:(\d+)[ \t]+([^/\s]+)/(\d+)", line)
        if m and int(m.group(1)) in pts:
            codecs[int(m.group(1))] = (m.group(2).upper(), int(m.group(3)))
    return codecs
