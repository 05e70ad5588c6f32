"""One subscriber's 5656 replies are capped (engine/smpp_proxy/reply_cap.py): 2,000 DK/HUY DNC from one number in a
second were answered with 2,000 SMS of ours (found by the DNC probe, stop 53). Beyond `[shortcode] replies_per_hour`
the commands are still carried out, only their confirmations are not sent."""
import pytest

from engine.lists import ListStore
from engine.smpp_proxy.accounts import SmppConfigError, load_smpp_settings
from engine.smpp_proxy.reply_cap import ReplyCap
from tests.test_smpp_mo_concat import confirmations, deliver, mo, proxy  # noqa: F401 (proxy: fixture)
from tests.test_smpp_proxy import pipe, wait  # noqa: F401 (pipe: fixture)


def test_a_subscribers_replies_stop_at_the_cap_and_its_commands_still_count(proxy, pipe):
    h, _ = proxy(shortcode_replies_per_hour=3)
    flood, other = "84911000501", "84911000502"
    for i in range(8):
        deliver(h, mo(b"HUY DNC" if i % 2 else b"DK DNC", src=flood, dc=0, esm_class=0))
    deliver(h, mo(b"DK DNC", src=other, dc=0, esm_class=0))
    assert wait(lambda: len(h.sim.mo_responses) == 9)                 # every command acknowledged
    assert wait(lambda: confirmations(h, other))                      # another subscriber's reply goes
    assert wait(lambda: h.proxy.stats["shortcode_replies_capped"] == 5)
    assert len(confirmations(h, flood)) == 3
    lists = ListStore(pipe.store.dir).load()
    assert not lists.in_dnc(84911000501, "S")                         # the last of the 8 (a HUY) carried out
    assert lists.in_dnc(84911000502, "S")


def test_the_cap_counts_per_hour_and_keeps_a_bounded_table():
    cap = ReplyCap(2, bound=16)
    assert [cap.allow("a", 10.0) for _ in range(3)] == [True, True, False]
    assert cap.allow("a", 3600.0)                                     # the next hour
    for i in range(100):                                              # distinct senders: the table stays bounded
        cap.allow(f"n{i}", 3601.0)
    assert len(cap.counts) <= 16
    assert all(ReplyCap(0).allow("a", 1.0) for _ in range(50))        # 0: no cap


def test_a_negative_cap_is_refused_with_its_line(tmp_path):
    (tmp_path / "smpp.toml").write_text("[shortcode]\nreplies_per_hour = -1\n")
    with pytest.raises(SmppConfigError) as e:
        load_smpp_settings(tmp_path)
    assert "smpp.toml:2:1: [shortcode] replies_per_hour" in str(e.value)
