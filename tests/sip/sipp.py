"""SIPp on loopback for the endpoint tests: scenarios, a runner, free ports."""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

SIPP_SHARE = Path("/usr/share/sip-tester")

_HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="{name}">
"""

_INVITE = """  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Caller" <sip:+15550001111@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000

    ]]>
  </send>
"""

_ACK_2XX = """  <send>
    <![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Caller" <sip:+15550001111@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""

_BYE = """  <send retrans="500">
    <![CDATA[

      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Caller" <sip:+15550001111@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
"""

# ACK for a final non-2xx answer: same branch as the INVITE (message 0 of the scenario).
_ACK_FAILURE = """  <send>
    <![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-{back}]
      From: "Caller" <sip:+15550001111@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""

_CANCEL = """  <send>
    <![CDATA[

      CANCEL sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-{back}]
      From: "Caller" <sip:+15550001111@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 CANCEL
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""


def answered_call(hold_ms: int) -> str:
    """INVITE, (180), 200, ACK, `hold_ms` of call, BYE from the caller."""
    return (_HEAD.format(name="answered") + _INVITE
            + '  <recv response="100" optional="true"/>\n  <recv response="180" optional="true"/>\n'
            + '  <recv response="200" rtd="true"/>\n' + _ACK_2XX
            + f'  <pause milliseconds="{hold_ms}"/>\n' + _BYE + "</scenario>\n")


_INFO_DTMF = """  <send retrans="500">
    <![CDATA[

      INFO sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Caller" <sip:+15550001111@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} INFO
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      Signal={digit}
      Duration=160

    ]]>
  </send>
  <recv response="200"/>
"""


def info_dtmf_call(digits: str, gap_ms: int = 200) -> str:
    """INVITE, (180), 200, ACK, then each of `digits` as a SIP INFO (application/dtmf-relay, answered
    200) `gap_ms` apart, then BYE."""
    infos = "".join(f'  <pause milliseconds="{gap_ms}"/>\n' + _INFO_DTMF.format(cseq=2 + i, digit=d)
                    for i, d in enumerate(digits))
    bye = _BYE.replace("CSeq: 2 BYE", f"CSeq: {2 + len(digits)} BYE")
    return (_HEAD.format(name="info dtmf") + _INVITE
            + '  <recv response="100" optional="true"/>\n  <recv response="180" optional="true"/>\n'
            + '  <recv response="200"/>\n' + _ACK_2XX + infos
            + f'  <pause milliseconds="{gap_ms}"/>\n' + bye + "</scenario>\n")


def answered_call_checking(hold_ms: int, contact: str, sdp: str) -> str:
    """Like `answered_call`, and the scenario fails unless the 200's Contact header matches the regular
    expression `contact` and its SDP body matches `sdp`."""
    checks = f"""  <recv response="200">
    <action>
      <ereg regexp="{contact}" search_in="hdr" header="Contact:" check_it="true" assign_to="contact"/>
      <ereg regexp="{sdp}" search_in="body" check_it="true" assign_to="sdp"/>
      <log message="contact [$contact], sdp [$sdp]"/>
    </action>
  </recv>
"""
    return (_HEAD.format(name="answered, checked") + _INVITE
            + '  <recv response="100" optional="true"/>\n  <recv response="180" optional="true"/>\n'
            + checks + _ACK_2XX + f'  <pause milliseconds="{hold_ms}"/>\n' + _BYE + "</scenario>\n")


_NOTIFY = """  <send retrans="500">
    <![CDATA[

      NOTIFY sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Caller" <sip:+15550001111@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} NOTIFY
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Event: refer
      Subscription-State: {state}
      Content-Type: message/sipfrag;version=2.0
      Content-Length: [len]

      SIP/2.0 {frag}

    ]]>
  </send>
  <recv response="200"/>
"""

_ANSWER_REFER = """  <send>
    <![CDATA[

      SIP/2.0 {status}
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>
"""


def referred_call(refer_to: str, refer_answer: str, notifies: tuple[str, ...] = (), *, key: str = "0",
                  hold_ms: int = 0) -> str:
    """A trunk that takes a blind transfer: INVITE, (180), 200, ACK; after a second the caller presses
    `key` (RFC 2833, SIPp's pcap/dtmf_2833_<key>.pcap); the REFER that must follow, its Refer-To
    matching the regular expression `refer_to`, is answered `refer_answer` ("202 Accepted", "403
    Forbidden"). Each of `notifies` ("100 Trying", "180 Ringing", "200 OK") is then sent 300 ms apart as a
    NOTIFY's message/sipfrag, the last one terminating the subscription. With `hold_ms` the caller stays
    that long and hangs up; without, it waits for standin's BYE."""
    invite = _INVITE.replace("m=audio [media_port]", "m=audio [auto_media_port]")
    refer = f"""  <recv request="REFER" timeout="10000">
    <action>
      <ereg regexp="{refer_to}" search_in="hdr" header="Refer-To:" check_it="true" assign_to="to"/>
      <log message="refer-to [$to]"/>
    </action>
  </recv>
"""
    parts = [_HEAD.format(name="referred"), invite,
             '  <recv response="100" optional="true"/>\n  <recv response="180" optional="true"/>\n',
             '  <recv response="200"/>\n', _ACK_2XX, '  <pause milliseconds="1000"/>\n',
             f'  <nop><action><exec play_pcap_audio="pcap/dtmf_2833_{key}.pcap"/></action></nop>\n',
             refer, _ANSWER_REFER.format(status=refer_answer)]
    for i, frag in enumerate(notifies):
        state = "terminated;reason=noresource" if i == len(notifies) - 1 else "active;expires=60"
        parts += ['  <pause milliseconds="300"/>\n', _NOTIFY.format(cseq=2 + i, state=state, frag=frag)]
    if hold_ms:
        bye = _BYE.replace("CSeq: 2 BYE", f"CSeq: {2 + len(notifies)} BYE")
        parts += [f'  <pause milliseconds="{hold_ms}"/>\n', bye]
    else:
        parts.append(_BYE_RECEIVED)
    return "".join(parts) + "</scenario>\n"


def keyed_call(keys: str, gap_ms: int = 400, hold_ms: int = 4000) -> str:
    """INVITE, (180), 200, ACK; after a second, each of `keys` pressed by RFC 2833 (SIPp's
    pcap/dtmf_2833_<key>.pcap, "#" as dtmf_2833_pound) `gap_ms` apart; `hold_ms` more, then BYE."""
    invite = _INVITE.replace("m=audio [media_port]", "m=audio [auto_media_port]")
    pressed = "".join(
        f'  <nop><action><exec play_pcap_audio="pcap/{DTMF_PCAP[k]}"/></action></nop>\n'
        f'  <pause milliseconds="{gap_ms}"/>\n' for k in keys)
    return (_HEAD.format(name="keyed") + invite
            + '  <recv response="100" optional="true"/>\n  <recv response="180" optional="true"/>\n'
            + '  <recv response="200"/>\n' + _ACK_2XX + '  <pause milliseconds="1000"/>\n' + pressed
            + f'  <pause milliseconds="{hold_ms}"/>\n' + _BYE + "</scenario>\n")


DTMF_PCAP = {**{str(d): f"dtmf_2833_{d}.pcap" for d in range(10)}, "#": "dtmf_2833_pound.pcap",
             "*": "dtmf_2833_star.pcap"}


PCAP_TRANSCRIPT = "start_s\tend_s\tlabel\ttext\n0.6\t7.6\tCOMPLETE\tCould you take a message?\n"


def pcap_folder(cwd: Path) -> Path:
    """Lay out SIPp's sample pcaps as `-sn uac_pcap` expects them in its working folder, and write a
    timed transcript of the speech in g711a.pcap for the `transcript` STT; returns the transcript."""
    if not (SIPP_SHARE / "g711a.pcap").is_file():
        pytest.skip("SIPp's g711a.pcap is missing: apt-get install sip-tester")
    (cwd / "pcap").mkdir(exist_ok=True)
    for name in ("g711a.pcap", "dtmf_2833_1.pcap"):
        shutil.copy(SIPP_SHARE / name, cwd / "pcap" / name)
    transcript = cwd / "caller.tsv"
    transcript.write_text(PCAP_TRANSCRIPT)
    return transcript


def pcap_call(pause_ms: int) -> str:
    """Like `answered_call`, offering PCMA and playing SIPp's pcap/g711a.pcap (A-law speech) into the
    call, then `pause_ms` more (the pcap plays on while the scenario pauses) before the BYE."""
    invite = _INVITE.replace("RTP/AVP 0 101", "RTP/AVP 8 101").replace("rtpmap:0 PCMU", "rtpmap:8 PCMA")
    invite = invite.replace("m=audio [media_port]", "m=audio [auto_media_port]")
    return (_HEAD.format(name="pcap call") + invite
            + '  <recv response="100" optional="true"/>\n  <recv response="180" optional="true"/>\n'
            + '  <recv response="200" rtd="true"/>\n' + _ACK_2XX
            + '  <nop><action><exec play_pcap_audio="pcap/g711a.pcap"/></action></nop>\n'
            + f'  <pause milliseconds="{pause_ms}"/>\n' + _BYE + "</scenario>\n")


_BYE_RECEIVED = """  <recv request="BYE" timeout="10000"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
"""


def call_ended_by_standin() -> str:
    """INVITE, (180), 200, ACK, then wait (10 s at most) for standin's BYE and answer it."""
    return (_HEAD.format(name="ended by standin") + _INVITE
            + '  <recv response="100" optional="true"/>\n  <recv response="180" optional="true"/>\n'
            + '  <recv response="200"/>\n' + _ACK_2XX + _BYE_RECEIVED + "</scenario>\n")


def refused_call(code: int) -> str:
    """INVITE answered with final `code` (then ACKed); anything else fails the scenario."""
    return (_HEAD.format(name=f"refused {code}") + _INVITE
            + '  <recv response="100" optional="true"/>\n'
            + f'  <recv response="{code}"/>\n' + _ACK_FAILURE.format(back=3) + "</scenario>\n")


def cancelled_call(ring_ms: int) -> str:
    """INVITE, 180, `ring_ms` of ringing, CANCEL, 200 for the CANCEL, 487 for the INVITE, ACK."""
    return (_HEAD.format(name="cancelled") + _INVITE
            + '  <recv response="100" optional="true"/>\n  <recv response="180"/>\n'
            + f'  <pause milliseconds="{ring_ms}"/>\n' + _CANCEL.format(back=4)
            + '  <recv response="200"/>\n  <recv response="487"/>\n' + _ACK_FAILURE.format(back=7)
            + "</scenario>\n")


def registrar(expires_s: int, refreshes: int, user: str, password: str) -> str:
    """A registrar: challenge the first REGISTER, check the credentials, grant `expires_s`, then take
    `refreshes` refreshes and the final un-REGISTER (expires=0) with 200."""
    ok = """  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]reg
      [last_Call-ID:]
      [last_CSeq:]
      [last_Contact:];expires={expires}
      Content-Length: 0

    ]]>
  </send>
"""
    challenge = """  <send>
    <![CDATA[

      SIP/2.0 401 Unauthorized
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]reg
      [last_Call-ID:]
      [last_CSeq:]
      WWW-Authenticate: Digest realm="standin.test", nonce="47ebe028cda119c35d4877b383027d28da013815"
      Content-Length: 0

    ]]>
  </send>
"""
    forbidden = "".join(line for line in challenge.replace("401 Unauthorized", "403 Forbidden")
                        .splitlines(keepends=True) if "WWW-Authenticate" not in line)
    checked = f"""  <recv request="REGISTER">
    <action>
      <verifyauth assign_to="authvalid" username="{user}" password="{password}"/>
    </action>
  </recv>
  <nop test="authvalid" next="good"/>
  <nop next="bad"/>
  <label id="good"/>
"""
    parts = [_HEAD.format(name="registrar"), '  <recv request="REGISTER"/>\n', challenge, checked,
             ok.format(expires=expires_s)]
    for _ in range(refreshes):
        parts += ['  <recv request="REGISTER"/>\n', ok.format(expires=expires_s)]
    parts += ['  <recv request="REGISTER"/>\n', ok.format(expires=0), '  <nop next="end"/>\n',
              '  <label id="bad"/>\n', forbidden,
              '  <recv response="299" timeout="100"/>\n',  # a wrong password fails the scenario
              '  <label id="end"/>\n</scenario>\n']
    return "".join(parts)


@dataclass
class SippResult:
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def sipp_binary() -> str:
    path = shutil.which("sipp")
    if path is None:
        pytest.skip("SIPp is not installed (apt-get install sip-tester)")
    return path


async def run_sipp(args: list[str], cwd: Path, timeout_s: float = 30.0) -> SippResult:
    """SIPp with `args` (one call unless said otherwise), bounded in time; its output for messages."""
    proc = await asyncio.create_subprocess_exec(
        sipp_binary(), *args, "-nostdin", "-timeout", f"{int(timeout_s)}s", "-timeout_error",
        "-trace_err", "-error_file", str(cwd / "errors.log"),
        cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s + 10)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
    except asyncio.CancelledError:
        proc.kill()
        await proc.communicate()
        raise
    errors = (cwd / "errors.log").read_text(errors="replace")[-3000:] if (cwd / "errors.log").exists() else ""
    return SippResult(proc.returncode if proc.returncode is not None else -1,
                      out.decode(errors="replace")[-3000:] + errors)


def scenario(cwd: Path, name: str, text: str) -> str:
    path = cwd / f"{name}.xml"
    path.write_text(text)
    return str(path)


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port: int = udp.getsockname()[1]
        if port_free(port, host):
            return port
    raise RuntimeError("no free port")


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def free_rtp_range(count: int = 20, host: str = "127.0.0.1") -> int:
    """An even start port with `count` free ports after it."""
    for _ in range(100):
        start = random.randrange(20000, 30000, 2)
        if all(port_free(p, host) for p in range(start, start + count)):
            return start
    raise RuntimeError("no free RTP range")
