"""Contacts from a CardDAV address book, against a real CardDAV server: Radicale, run on loopback with
htpasswd logins, each test with an address book of its own made by extended MKCOL and filled by PUT."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.cli import main
from server.config import Config, load
from server.contacts import (
    CarddavError,
    create_contact,
    create_profile,
    import_carddav,
    import_vcard,
    list_contacts,
    plan_call,
    sync_carddav,
)
from server.contacts import carddav as carddav_module
from server.contacts.carddav import carddav_refreshing, fetch_address_book
from server.store.db import Database

pytest.importorskip("radicale", reason="radicale (a CardDAV server, pip install radicale) is not installed")

USER, PASSWORD = "marco", "correct horse battery"
ENV = "STANDIN_TEST_CARDDAV_PASSWORD"
MKCOL = b"""<?xml version="1.0" encoding="utf-8"?>
<D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"><D:set><D:prop>
  <D:resourcetype><D:collection/><C:addressbook/></D:resourcetype><D:displayname>Contacts</D:displayname>
</D:prop></D:set></D:mkcol>"""


def card(uid: str, name: str, *numbers: str, categories: str = "", note: str = "") -> str:
    lines = ["BEGIN:VCARD", "VERSION:3.0", f"UID:{uid}", f"FN:{name}", *(f"TEL:{n}" for n in numbers)]
    lines += [f"CATEGORIES:{categories}"] if categories else []
    lines += [f"NOTE:{note}"] if note else []
    return "\r\n".join([*lines, "END:VCARD"]) + "\r\n"


@dataclass
class Radicale:
    origin: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.origin, auth=(USER, PASSWORD), timeout=30)

    def new_book(self, cards: dict[str, str]) -> str:
        """A new address book holding `cards` (file name → vCard); its URL."""
        path = f"/{USER}/{uuid.uuid4().hex[:12]}/"
        with self.client() as client:
            assert client.request("MKCOL", path, content=MKCOL).status_code == 201
            for name, text in cards.items():
                self.put(client, path + name, text)
        return self.origin + path

    @staticmethod
    def put(client: httpx.Client, url: str, text: str) -> None:
        response = client.put(url, content=text.encode(), headers={"Content-Type": "text/vcard"})
        assert response.status_code in (201, 204), response.text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radicale]:
    folder = tmp_path_factory.mktemp("radicale")
    (folder / "users").write_text(f"{USER}:{PASSWORD}\n")
    port = free_port()
    (folder / "config").write_text(
        f"[server]\nhosts = 127.0.0.1:{port}\n"
        f"[auth]\ntype = htpasswd\nhtpasswd_filename = {folder / 'users'}\nhtpasswd_encryption = plain\n"
        f"delay = 0\n[storage]\nfilesystem_folder = {folder / 'storage'}\n[rights]\ntype = owner_only\n"
        "[logging]\nlevel = warning\n")
    with (folder / "log").open("wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "radicale", "--config", str(folder / "config")],
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"radicale did not start: {(folder / 'log').read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield Radicale(f"http://127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture
def password(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(ENV, PASSWORD)
    return PASSWORD


def settings(url: str, **more: Any) -> Config:
    return load(None, {"contacts": {"carddav_url": url, "carddav_username": USER, "carddav_password_env": ENV,
                                    **more}})


def people(db: Database) -> dict[str, dict[str, Any]]:
    with db.session() as session:
        return {c["name"]: c for c in list_contacts(session)}


FAMILY = {"anna.vcf": card("anna-1", "Anna Rossi", "+39 333 123 4567", categories="family,friends",
                           note="Marco's sister."),
          "spam.vcf": card("spam-1", "Call centre", "+39 02 9999999", categories="blocked"),
          "mail.vcf": card("mail-1", "Only Mail")}


def test_the_address_book_is_imported_with_profiles_beside_the_file_and_hand_entered(
        tmp_path: Path, db: Database, radicale: Radicale, password: str) -> None:
    with db.session() as s:
        create_profile(s, {"name": "family", "manner": "warm"})
        create_contact(s, {"name": "Plumber", "numbers": ["+39 333 777 7777"]})
    vcf = tmp_path / "phone.vcf"
    bea = card("bea-1", "Bea", "+39 347 111 2222")
    vcf.write_text(card("anna-1", "Anna (phone)", "+39 333 123 4567") + bea)
    assert import_vcard(db, vcf).added == 2
    url = radicale.new_book({**FAMILY, "carla.vcf": card("carla-1", "Carla", "+39 333 777 7777", "3471234")})
    config = settings(url)

    summary = import_carddav(db, config.contacts)
    assert (summary.added, summary.removed, summary.skipped, summary.without_numbers) == (2, 0, 1, 1)
    assert any("Anna Rossi" in p and "already belongs to 'Anna (phone)'" in p for p in summary.problems)
    assert any("Carla" in p and "already belongs to 'Plumber'" in p for p in summary.problems)
    found = people(db)
    assert set(found) == {"Plumber", "Anna (phone)", "Bea", "Call centre", "Carla"}
    assert [found[n]["source"] for n in ("Plumber", "Anna (phone)", "Call centre", "Carla")] == \
        ["manual", "vcard", "carddav", "carddav"]
    assert (found["Call centre"]["profile"], found["Carla"]["numbers"]) == ("blocked", ["3471234"])
    assert plan_call(config, db, "+39 02 9999999").blocked

    # the phone's card leaves the file: the file's import removes it, and only it; the address book's
    # Anna then gets her number and her profile
    vcf.write_text(bea)
    assert (import_vcard(db, vcf).removed, sync_carddav(config, db).added) == (1, 1)  # type: ignore[union-attr]
    found = people(db)
    assert set(found) == {"Plumber", "Bea", "Call centre", "Carla", "Anna Rossi"}
    anna = found["Anna Rossi"]
    assert (anna["numbers"], anna["profile"], anna["notes"], anna["source"], anna["uid"]) == \
        (["+393331234567"], "family", "Marco's sister.", "carddav", "anna-1")
    assert plan_call(config, db, "333 1234567").context.manner == "warm"
    again = import_carddav(db, config.contacts)
    assert (again.added, again.updated, again.unchanged, again.removed) == (0, 0, 3, 0)


def test_changes_on_the_server_arrive_with_the_next_sync(db: Database, radicale: Radicale,
                                                         password: str) -> None:
    url = radicale.new_book(FAMILY)
    config = settings(url)
    assert import_carddav(db, config.contacts).added == 2
    before = people(db)
    with radicale.client() as client:
        assert client.delete(url + "spam.vcf").status_code in (200, 204)
        radicale.put(client, url + "anna.vcf", card("anna-1", "Anna R.", "+39 333 123 4567"))
        radicale.put(client, url + "dario.vcf", card("dario-1", "Dario", "0039 02 555 1234"))
    summary = import_carddav(db, config.contacts)
    assert (summary.added, summary.updated, summary.unchanged, summary.removed) == (1, 1, 0, 1)
    after = people(db)
    assert set(after) == {"Anna R.", "Dario"}
    assert after["Anna R."]["id"] == before["Anna Rossi"]["id"] and after["Anna R."]["profile"] is None
    assert not plan_call(config, db, "+39 02 9999999").blocked


def test_wrong_credentials_are_a_clear_error_and_change_nothing(
        tmp_path: Path, db: Database, radicale: Radicale, password: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    url = radicale.new_book(FAMILY)
    import_carddav(db, settings(url).contacts)
    before = people(db)
    monkeypatch.setenv(ENV, "not the password")
    with pytest.raises(CarddavError) as caught:
        import_carddav(db, settings(url).contacts)
    assert f"the CardDAV server at {url} refused the user name or password (HTTP 401)" in str(caught.value)
    assert "not the password" not in str(caught.value)
    assert people(db) == before

    secret = tmp_path / "carddav.secret"
    secret.write_text(PASSWORD + "\n")
    from_file = settings(url, carddav_password_env="", carddav_password_file=str(secret))
    assert import_carddav(db, from_file.contacts).unchanged == 2  # a file's final newline is not the password
    for wrong, message in [({"carddav_password_env": "STANDIN_TEST_UNSET"}, "STANDIN_TEST_UNSET"),
                           ({"carddav_password_env": "", "carddav_password_file": str(tmp_path / "none")},
                            "cannot read the CardDAV password file"),
                           ({"carddav_password_env": ""}, "carddav_password_env or carddav_password_file"),
                           ({"carddav_url": url.replace("://", f"://{USER}:{PASSWORD}@")},
                            "must hold no user name or password")]:
        with pytest.raises(CarddavError, match=message) as caught:
            import_carddav(db, settings(url, **wrong).contacts)
        assert PASSWORD not in str(caught.value)
    assert people(db) == before


def test_a_server_that_is_down_or_silent_is_a_clear_error(db: Database, password: str) -> None:
    with db.session() as s:
        create_contact(s, {"name": "Plumber", "numbers": ["+39 333 777 7777"]})
    before = people(db)
    down = f"http://127.0.0.1:{free_port()}/{USER}/contacts/"
    with pytest.raises(CarddavError, match=f"cannot reach the CardDAV server at {down}"):
        import_carddav(db, settings(down).contacts)
    with socket.socket() as silent:  # takes connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/{USER}/contacts/"
        with pytest.raises(CarddavError, match=f"the CardDAV server at {url} did not answer within 0.5 s"):
            import_carddav(db, settings(url).contacts, timeout_s=0.5)
    assert people(db) == before


def test_a_url_that_is_not_one_address_book_is_refused(db: Database, radicale: Radicale,
                                                       password: str) -> None:
    book = radicale.new_book(FAMILY)
    home = f"{radicale.origin}/{USER}/"
    with pytest.raises(CarddavError, match=f"{home} is not a CardDAV address book but a collection of them"
                                           rf" \(.*{book}.*\); set \[contacts\] carddav_url to one"):
        import_carddav(db, settings(home).contacts)
    with pytest.raises(CarddavError, match=r"there is nothing at .*/nobook/ \(HTTP 404\)"):
        import_carddav(db, settings(f"{radicale.origin}/{USER}/nobook/").contacts)
    with pytest.raises(CarddavError, match="must be an http:// or https:// URL"):
        import_carddav(db, settings("ftp://example.org/book/").contacts)
    assert people(db) == {}


@pytest.mark.parametrize("query", [
    "<C:filter><C:no-such-test/></C:filter>",  # Radicale answers 400: a server that cannot run the query
    '<C:filter test="anyof"><C:prop-filter name="X-NOBODY"/></C:filter>',  # a server that finds no cards
])
def test_cards_a_query_does_not_bring_are_fetched_by_multiget(
        query: str, db: Database, radicale: Radicale, password: str, monkeypatch: pytest.MonkeyPatch) -> None:
    url = radicale.new_book({**FAMILY, "d.vcf": card("d-1", "Dario", "021")})
    config = settings(url)
    by_query = fetch_address_book(config.contacts)
    assert sorted(by_query) == sorted(f"/{url.split('/', 3)[3]}{n}" for n in (*FAMILY, "d.vcf"))
    monkeypatch.setattr(carddav_module, "_QUERY", carddav_module._QUERY.replace('<C:filter test="allof"/>',
                                                                                query))
    monkeypatch.setattr(carddav_module, "_BATCH", 3)  # two multigets
    assert fetch_address_book(config.contacts) == by_query
    assert import_carddav(db, config.contacts).added == 3


def test_the_cli_imports_the_address_book(tmp_path: Path, radicale: Radicale, password: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    url = radicale.new_book(FAMILY)
    path = tmp_path / "standin.toml"
    path.write_text(f'[storage]\ndatabase = "sqlite:///{tmp_path / "db.sqlite"}"\n[contacts]\n'
                    f'carddav_url = "{url}"\ncarddav_username = "{USER}"\ncarddav_password_env = "{ENV}"\n')
    assert main(["contacts", "import", "--carddav", "--config", str(path)]) == 0
    assert f"{url}: 2 added, 0 updated" in capsys.readouterr().out
    path.write_text(path.read_text().replace(url, url + "gone/"))
    assert main(["contacts", "import", "--carddav", "--config", str(path)]) == 2
    assert "(HTTP 404)" in capsys.readouterr().err
    path.write_text(f'[storage]\ndatabase = "sqlite:///{tmp_path / "db.sqlite"}"\n')
    assert main(["contacts", "import", "--carddav", "--config", str(path)]) == 2
    assert "set [contacts] carddav_url" in capsys.readouterr().err


def test_serving_imports_at_start_and_every_refresh_and_a_failure_keeps_the_contacts(
        db: Database, radicale: Radicale, password: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    url = radicale.new_book(FAMILY)
    config = settings(url, carddav_refresh_min=15)
    slept: list[float] = []
    names: list[set[str]] = []

    async def sleep(seconds: float) -> None:  # each "quarter of an hour": the server changes, or fails
        slept.append(seconds)
        names.append(set(people(db)))
        if len(slept) == 1:
            with radicale.client() as client:
                assert client.delete(url + "anna.vcf").status_code in (200, 204)
        elif len(slept) == 2:
            monkeypatch.setenv(ENV, "expired")
        else:
            finished.set()
            await asyncio.Event().wait()

    async def serving() -> None:
        async with carddav_refreshing(config, db, sleep=sleep):
            await asyncio.wait_for(finished.wait(), 60)

    finished = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="server.contacts"):
        asyncio.run(serving())
    assert slept == [900.0, 900.0, 900.0]
    assert names == [{"Anna Rossi", "Call centre"}, {"Call centre"}, {"Call centre"}]
    failed = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert failed == [f"the CardDAV server at {url} refused the user name or password (HTTP 401); check "
                      "[contacts] carddav_username and the password; the contacts from the last CardDAV "
                      "import stay"]
    assert not any(name in caplog.text for name in ("Anna", "Call centre", "9999999", "expired"))


def test_owner_running_keeps_the_address_book_imported(
        tmp_path: Path, database_url: str, radicale: Radicale, password: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from models.judge_rules import RulesJudge
    from models.llm_script import ScriptLlm
    from server.runtime import Engines
    from server.serve import owner_running
    from tests.fakes import SpanStt, SpanVad, ToneTts

    url = radicale.new_book(FAMILY)
    config = load(None, {"storage": {"database": database_url, "calls_dir": str(tmp_path / "calls")},
                         "contacts": {"carddav_url": url, "carddav_username": USER,
                                      "carddav_password_env": ENV}})
    refresh = carddav_module.refresh_once

    async def refreshed(*args: Any) -> Any:
        summary = await refresh(*args)
        done.set()
        return summary

    monkeypatch.setattr(carddav_module, "refresh_once", refreshed)
    done = asyncio.Event()

    async def serving() -> set[str]:
        engines = Engines(SpanVad([]), SpanStt([]), RulesJudge(), ScriptLlm([]), ToneTts())
        async with owner_running(config, engines) as owner:
            await asyncio.wait_for(done.wait(), 60)
            return set(people(owner.db))

    assert asyncio.run(serving()) == {"Anna Rossi", "Call centre"}
