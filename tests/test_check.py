"""`telfilter check`: the JSONL contract, malformed lines, deterministic replay."""
import json
import subprocess
import sys

from .conftest import ROOT, jsonl, run_cli

T = "2026-03-02T10:00:00+07:00"


def sms(id, sender, recipient, text, time=T, **kw):
    return dict(id=id, kind="sms", sender=sender, recipient=recipient, text=text, account=kw.pop("account", "esme"),
                direction=kw.pop("direction", "mt"), time=time, **kw)


def check(data_dir, lines, *extra):
    p = run_cli("check", "--jsonl", "-", "--data-dir", data_dir, *extra, input=jsonl(lines) if isinstance(lines, list) else lines)
    assert p.returncode == 0, p.stderr
    return [json.loads(l) for l in p.stdout.splitlines()]


def test_one_line_per_input_with_malformed_lines(data_dir):
    text = "\n".join([
        json.dumps(sms("a", "0901234567", "0912345678", "Hen gap lai")),
        "{not json",
        json.dumps([1, 2]),
        json.dumps({"id": "b", "kind": "sms", "sender": "x", "recipient": "0912345678", "time": T}),
        json.dumps({"id": "c", "kind": "mms", "sender": "x"}),
        json.dumps({"id": "d", "kind": "sms", "sender": "x", "recipient": "0912345678", "text": "t", "time": "tomorrow"}),
        json.dumps({"id": "e", "kind": "call", "caller": "0901234567", "callee": "0912345678", "time": "2026-03-02T03:00:00Z"}),
    ]) + "\n"
    out = check(data_dir, text)
    assert [o.get("id") for o in out] == ["a", None, None, "b", "c", "d", "e"]
    assert out[0]["action"] == "allow" and out[0]["hits"] == []
    assert out[1]["line"] == 2 and "error" in out[1]
    assert out[2] == {"line": 3, "error": "line is not a JSON object"}
    assert out[3]["line"] == 4 and "text" in out[3]["error"]
    assert "unknown kind" in out[4]["error"]
    assert "time" in out[5]["error"]
    assert set(out[6]) == {"id", "action", "score", "hits"}


def test_list_stage_symbols(data_dir, tmp_path):
    (tmp_path / "bl.csv").write_text("kind,value\nnumber,0987000666\ndomain,bad.example\n")
    (tmp_path / "s.csv").write_text("sender,owner,category,valid_from,valid_to,accounts\n"
                                    "GOODBANK,Good Bank,CSKH,2026-01-01,2026-12-31,esme1\n")
    run_cli("lists", "import", "blacklist", tmp_path / "bl.csv", "--data-dir", data_dir, check=True)
    run_cli("lists", "import", "senders", tmp_path / "s.csv", "--data-dir", data_dir, check=True)
    out = check(data_dir, [
        sms(1, "+84987000666", "0912345678", "hi"),
        sms(2, "0901234567", "0912345678", "login at www.bad.example/x"),
        sms(3, "0901234567", "0912345678", "see notbad.example"),
        sms(4, "goodbank", "0912345678", "OTP 1234", account="esme1"),
        sms(5, "GOODBANK", "0912345678", "OTP 1234", account="esme2"),
        sms(6, "GOODBANK", "0912345678", "OTP 1234", account="esme1", time="2027-01-01T00:30:00+07:00"),
        sms(7, "NOBODY", "0912345678", "OTP 1234"),
        {"id": 8, "kind": "call", "caller": "0987000666", "callee": "0912345678", "time": T},
    ])
    sym = {o["id"]: [h["symbol"] for h in o["hits"]] for o in out}
    act = {o["id"]: o["action"] for o in out}
    assert sym[1] == ["SENDER_BLACKLISTED"] and act[1] == "drop"
    assert "URL_BLACKLISTED" in sym[2] and act[2] == "drop"
    assert sym[3] == [] and act[3] == "allow"
    assert sym[4] == [] and act[4] == "allow"
    assert sym[5] == ["SENDER_ID_UNREGISTERED"] and "esme2" in out[4]["hits"][0]["detail"]
    assert sym[6] == ["SENDER_ID_UNREGISTERED"] and "expired" in out[5]["hits"][0]["detail"]
    assert sym[7] == ["SENDER_ID_UNREGISTERED"]
    assert sym[8] == ["SENDER_BLACKLISTED"]
    for o in out:
        for h in o["hits"]:
            assert set(h) == {"symbol", "score", "detail", "source"}
            assert h["source"].startswith("config/rules/") and ":" in h["source"]


def test_replay_is_byte_identical_and_uses_message_time(data_dir, tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_text(jsonl([sms(i, "0901234567", "0912345678", "same text again", time=f"2026-03-02T10:0{i}:00+07:00")
                        for i in range(6)]))
    a = run_cli("check", "--jsonl", f, "--data-dir", data_dir, check=True).stdout
    run_cli("check", "--jsonl", f, "--data-dir", data_dir, "--out", tmp_path / "o.jsonl", check=True)
    assert (tmp_path / "o.jsonl").read_text() == a
    acts = [json.loads(l)["action"] for l in a.splitlines()]
    # 4th and 5th within 5 min of the first three are FLOOD_SAME_CONTENT; dropped ones do not count,
    # so at 10:05 only 10:01 and 10:02 are in the window
    assert acts == ["allow"] * 3 + ["drop", "drop", "allow"]
    assert "wall" not in a and "elapsed" not in a


def test_single_message_mode(data_dir):
    p = run_cli("check", "--sender", "FAKE", "--recipient", "0912345678", "--text", "hi", "--time", T,
                "--data-dir", data_dir, check=True)
    o = json.loads(p.stdout)
    assert o["action"] == "drop" and o["hits"][0]["symbol"] == "SENDER_ID_UNREGISTERED"


def test_options_before_or_after_and_help():
    for args in (["--help"], ["check", "--help"], ["lists", "import", "--help"], ["rules", "check", "--help"],
                 ["ml", "train", "--help"], ["serve", "--help"], ["demo", "--help"], ["bench", "--help"]):
        p = run_cli(*args)
        assert p.returncode == 0 and "usage:" in p.stdout
    p = run_cli("--data-dir", "/tmp/x-tf-none", "lists", "stats", "--config", "config")
    assert p.returncode == 0


def test_missing_input_files_are_clear_errors(data_dir, tmp_path):
    p = run_cli("check", "--jsonl", tmp_path / "nope.jsonl", "--data-dir", data_dir)
    assert p.returncode == 2 and "nope.jsonl: No such file" in p.stderr and "Traceback" not in p.stderr
    p = run_cli("lists", "import", "dnc", tmp_path / "nope.csv", "--data-dir", data_dir)
    assert p.returncode == 2 and "nope.csv: No such file" in p.stderr and "Traceback" not in p.stderr


def test_byte_order_mark_is_ignored(data_dir, tmp_path):
    f = tmp_path / "bom.jsonl"
    f.write_bytes(b"\xef\xbb\xbf" + jsonl([sms("b1", "0901234567", "0912345678", "hello")]).encode())
    out = check(data_dir, f.read_text(encoding="utf-8"))
    assert out[0]["id"] == "b1" and out[0]["action"] == "allow"
    p = run_cli("check", "--jsonl", f, "--data-dir", data_dir, check=True)
    assert json.loads(p.stdout)["id"] == "b1"


def test_bad_utf8_and_deep_nesting_are_per_line_errors(data_dir, tmp_path):
    good = json.dumps(sms("ok", "0901234567", "0912345678", "Hen gap lai")).encode()
    body = b"\n".join([
        b"[" * 100_000 + b"]" * 100_000,
        json.dumps(sms("latin", "0901234567", "0912345678", "PLACEHOLDER")).encode().replace(b"PLACEHOLDER", b"caf\xe9"),
        b'{"id": ' + b"[" * 990 + b"]" * 990 + b', "kind": "sms"}',
        good,
    ]) + b"\n"
    f = tmp_path / "in.jsonl"
    f.write_bytes(body)
    for src in (f, "-"):
        p = subprocess.run([sys.executable, "-m", "engine.cli", "check", "--jsonl", str(src), "--out", str(tmp_path / "out.jsonl"),
                            "--data-dir", str(data_dir)], input=body, capture_output=True, cwd=ROOT)
        assert p.returncode == 0 and b"Traceback" not in p.stderr, p.stderr
        out = [json.loads(l) for l in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
        assert [o.get("line") for o in out[:3]] == [1, 2, 3] and all("error" in o for o in out[:3])
        assert "not valid UTF-8: byte 0xe9" in out[1]["error"]
        assert out[3]["id"] == "ok" and out[3]["action"] == "allow"


def test_times_and_durations_out_of_range_are_per_line_errors(data_dir):
    """Found by a first trial: a call of 5e9 s, inf, NaN or in the year 2200 stopped the whole run with a traceback
    (the history keeps 32-bit seconds) after the 5656 commands before it had been applied and with no output."""
    call = dict(kind="call", caller="0987654321", callee="0912000001", time="2026-11-28T11:00:00Z")
    lines = [json.dumps(dict(call, id=i, duration=d)) for i, d in enumerate((5_000_000_000, 1e12, 4294967296))]
    lines += ['{"id": "inf", "kind": "call", "caller": "0987654321", "callee": "0912000001", '
              '"time": "2026-11-28T11:00:00Z", "duration": Infinity}',
              '{"id": "nan", "kind": "call", "caller": "0987654321", "callee": "0912000001", '
              '"time": "2026-11-28T11:00:00Z", "duration": NaN}',
              json.dumps(dict(call, id="2200", time="2200-01-01T00:00:00Z", duration=5)),
              json.dumps(sms("1969", "0901234567", "0912345678", "Hen gap lai", time="1969-12-31T23:00:00Z")),
              json.dumps(dict(call, id="ok", duration=125.5))]
    out = check(data_dir, "\n".join(lines) + "\n")
    assert [o["id"] for o in out] == [0, 1, 2, "inf", "nan", "2200", "1969", "ok"]
    assert all("duration must be a number of seconds from 0 to 2592000" in o["error"] for o in out[:5])
    assert all("is outside 2000-2099" in o["error"] for o in out[5:7])
    assert out[7]["action"] == "allow"
    p = run_cli("check", "--sender", "x", "--recipient", "0912345678", "--text", "hi", "--time", "2300-01-01T00:00:00Z",
                "--data-dir", data_dir)
    assert p.returncode == 2 and "is outside 2000-2099" in p.stderr and "Traceback" not in p.stderr


def test_one_message_options_with_jsonl_are_refused(data_dir):
    p = run_cli("check", "--jsonl", "-", "--sender", "x", "--data-dir", data_dir, input="")
    assert p.returncode == 2 and "--sender given with --jsonl" in p.stderr


def test_account_and_direction_with_jsonl_are_refused_not_ignored(data_dir):
    # `check --jsonl F --account A` (or --direction mo) judged every line with the line's own account and
    # direction, silently: both options are the one message's, as --sender is (found by the README audit)
    for opt in (("--account", "esme1"), ("--direction", "mo"), ("--direction", "mt")):
        p = run_cli("check", "--jsonl", "-", *opt, "--data-dir", data_dir, input="")
        assert p.returncode == 2 and f"{opt[0]} given with --jsonl" in p.stderr, (opt, p.stderr)
    # one message still takes them, and still defaults to mt and no account
    p = run_cli("check", "--sender", "0901234567", "--recipient", "0912345678", "--text", "Hen gap lai",
                "--time", "2026-11-28T11:00:00+07:00", "--data-dir", data_dir)
    assert p.returncode == 0 and json.loads(p.stdout)["action"] == "allow", p.stderr
    p = run_cli("check", "--sender", "0912345678", "--recipient", "5656", "--text", "DK DNC", "--direction", "mo",
                "--account", "esme1", "--time", "2026-11-28T11:00:00+07:00", "--data-dir", data_dir)
    assert p.returncode == 0 and json.loads(p.stdout)["hits"][0]["symbol"] == "DNC_REGISTERED", p.stdout


def test_one_message_without_a_direction_is_judged_as_a_jsonl_line_without_one(tmp_path):
    """`check --sender S --recipient 5656 --text "DK DNC S"` was judged as an ESME's MT (no command, nothing
    registered) while the same message as a --jsonl line without "direction" was a subscriber's command
    (DNC_REGISTERED): one product, two defaults. Both now: not given = a command when it is to the short code
    (README "check --jsonl input and output"), an MT otherwise; an explicit mt to 5656 is never a command."""
    t = "2026-03-02T09:00:00+07:00"
    cases = [("0912000961", "5656", "DK DNC S", ()), ("0912000962", "5656", "HUY DNC", ()),
             ("SHOPABC", "0912000963", "[QC] Giam gia. TC gui 5656", ()),
             ("0912000964", "5656", "DK DNC", ("--direction", "mt")), ("0912000965", "5656", "DK DNC", ("--direction", "mo"))]
    for i, (sender, recipient, text, opt) in enumerate(cases):
        one = run_cli("check", "--sender", sender, "--recipient", recipient, "--text", text, "--time", t, *opt,
                      "--data-dir", tmp_path / f"one{i}")
        assert one.returncode == 0, one.stderr
        rec = dict(kind="sms", sender=sender, recipient=recipient, text=text, time=t)
        if opt:
            rec["direction"] = opt[1]
        [line] = check(tmp_path / f"jsonl{i}", [rec])
        assert line.pop("id") is None and json.loads(one.stdout) == line, (sender, text, opt)
    assert [h["symbol"] for h in json.loads(one.stdout)["hits"]] == ["DNC_REGISTERED"]
    p = run_cli("check", "--help")
    assert "not given: mo to the short code" in " ".join(p.stdout.split()), p.stdout


def test_an_out_file_that_cannot_be_written_is_named_as_given(data_dir, tmp_path):
    # the error named the temporary file beside it (".o.jsonl.12345.tmp"), a name the user never wrote
    f = tmp_path / "in.jsonl"
    f.write_text(json.dumps(sms("ok", "0901234567", "0912345678", "Hen gap lai")) + "\n")
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "o.jsonl"         # its directory is a file: nothing can make it
    for args in (("check", "--jsonl", f), ("lists", "export", "dnc")):
        p = run_cli(*args, "--out", out, "--data-dir", data_dir)
        named = " ".join(args[:1 if args[0] == "check" else 2])
        assert p.returncode == 2 and f"telfilter {named}: error: {out}: Not a directory" in p.stderr, p.stderr
        assert ".tmp" not in p.stderr


def test_an_out_file_in_a_directory_not_there_yet_makes_it(data_dir, tmp_path):
    # as reports export, ml cv --json and ml compare --changes do; check --out and lists export --out said
    # "No such file or directory" after the whole input had been checked
    f = tmp_path / "in.jsonl"
    f.write_text(json.dumps(sms("ok", "0901234567", "0912345678", "Hen gap lai")) + "\n")
    for i, args in enumerate((("check", "--jsonl", f), ("lists", "export", "dnc"))):
        out = tmp_path / f"new{i}" / "sub" / "o.out"
        p = run_cli(*args, "--out", out, "--data-dir", data_dir)
        assert p.returncode == 0, p.stderr
        assert out.is_file() and sorted(x.name for x in out.parent.iterdir()) == ["o.out"]
    assert json.loads((tmp_path / "new0" / "sub" / "o.out").read_text())["id"] == "ok"
    # a command that fails writes nothing: nor the directory made for its output
    p = run_cli("check", "--jsonl", tmp_path / "nope.jsonl", "--out", tmp_path / "new2" / "sub" / "o.out",
                "--data-dir", data_dir)
    assert p.returncode == 2 and "nope.jsonl: No such file" in p.stderr, p.stderr
    assert not (tmp_path / "new2").exists() and (tmp_path / "new0" / "sub").is_dir()


def test_a_lone_surrogate_escape_is_a_per_line_error(data_dir, tmp_path):
    # JSON allows "\ud83d" without its other half (RFC 8259 §8.2), but it is no character: a 5656 report holding one
    # was an internal error (reports.jsonl is UTF-8: exit 1), and a sender or id holding one, echoed in the verdict
    # line, stopped the whole run on a UnicodeEncodeError traceback (found by a probe of odd encodings)
    lines = [sms("report", "0912000003", "5656", "S 0912999888 vay tien PLACEHOLDER http://vay.example", direction="mo"),
             sms("sender", "PLACEHOLDER", "0912000002", "Hen gap lai"),
             sms("PLACEHOLDER", "0901234567", "0912000002", "Hen gap lai"),
             sms("pair", "0912000004", "5656", "S 0912999888 vay tien \U0001F600 http://vay.example", direction="mo"),
             sms("escaped", "0901234567", "0912000002", "a \\ud83d is six characters")]
    body = "".join(json.dumps(x) + "\n" for x in lines)         # ASCII: the emoji as its escaped pair
    body = body.replace("PLACEHOLDER", "\\ud83d", 2).replace("PLACEHOLDER", "x\\ude00")
    p = run_cli("check", "--jsonl", "-", "--data-dir", data_dir, input=body)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    out = [json.loads(l) for l in p.stdout.splitlines()]
    assert [o.get("line") for o in out] == [1, 2, 3, None, None]
    assert out[0]["error"] == "not valid Unicode: \\ud83d is half of a surrogate pair, without its other half"
    assert "\\ude00" in out[2]["error"]
    assert [o.get("id") for o in out[3:]] == ["pair", "escaped"] and all("action" in o for o in out[3:])
    reports = (data_dir / "reports.jsonl").read_bytes().decode("utf-8").splitlines()
    assert len(reports) == 1 and "\U0001F600" in json.loads(reports[0])["content"]
    p = run_cli("reports", "list", "--json", "--data-dir", data_dir)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr


def test_a_line_refused_for_half_a_surrogate_pair_still_names_its_id(data_dir):
    """README: a malformed line yields `{"line": N, "id": … (if known), "error": …}`. A line refused for a lone
    surrogate is JSON whose `id` is known, but its error line left the id out (a line refused for a missing field
    named it), so a caller could not match the error to its message (found by the README audit, stop 49). An id
    holding the lone surrogate itself cannot be written back, and is still left out."""
    body = (json.dumps(sms("m-7", "0901234567", "0912000002", "PLACEHOLDER")) + "\n"
            + json.dumps(sms("PLACEHOLDER", "0901234567", "0912000002", "Hen gap lai")) + "\n")
    body = body.replace("PLACEHOLDER", "\\ud83d")
    p = run_cli("check", "--jsonl", "-", "--data-dir", data_dir, input=body)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    out = [json.loads(l) for l in p.stdout.splitlines()]
    why = "not valid Unicode: \\ud83d is half of a surrogate pair, without its other half"
    assert out == [{"line": 1, "id": "m-7", "error": why}, {"line": 2, "error": why}], out
