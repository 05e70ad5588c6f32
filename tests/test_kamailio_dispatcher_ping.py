"""Kamailio's dispatcher keeps the screen in its set by pinging it (OPTIONS sip:SCREEN:PORT, no user part, every
second here; only a 200 keeps a destination active, the module's default) and the screen answers the ping itself
(tests/test_sip_options_to_screen.py): with the screen's next hop down, the screen stays up in Kamailio's set. Before,
the ping went on to the next hop: the screen answered it 503 (the next hop unreachable) and Kamailio took the screen
out of its set -- and with the next hop up, Kamailio's health check of the screen was the next hop's."""
import socket
import time

import pytest

from .test_kamailio_interop import KAMAILIO, STATELESS_CFG, Kamailio, make_screen

pytestmark = pytest.mark.skipif(KAMAILIO is None, reason="kamailio not installed (apt-get install -y kamailio)")

# (the stateless front's head: one UDP listener on 127.0.0.1, its logs on stderr)
DISPATCHER_CFG = STATELESS_CFG.split("request_route")[0] + """loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "dispatcher.so"
modparam("dispatcher", "list_file", "dispatcher.list")
modparam("dispatcher", "ds_ping_interval", 1)
modparam("dispatcher", "ds_probing_mode", 1)
modparam("dispatcher", "ds_probing_threshold", 1)
modparam("dispatcher", "ds_inactive_threshold", 1)
request_route {{
    exit;
}}
event_route[dispatcher:dst-down] {{
    xlog("L_ERR", "DST-DOWN $ru\\n");
}}
"""


def test_kamailio_dispatcher_keeps_the_screen_up_with_its_next_hop_down(tmp_path):
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)    # a next hop that is down: its port closed (ICMP)
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()
    h = make_screen(tmp_path, dead_port)
    try:
        (tmp_path / "kamailio").mkdir()
        (tmp_path / "kamailio" / "dispatcher.list").write_text(f"1 sip:127.0.0.1:{h.port}\n")
        k = Kamailio(tmp_path, dead_port, DISPATCHER_CFG)
        try:
            end = time.time() + 20
            while h.screen.stats.get("options_answered", 0) < 3 and time.time() < end \
                    and "DST-DOWN" not in k.tail():
                time.sleep(0.1)
            assert h.screen.stats.get("options_answered", 0) >= 3, k.tail()
            assert "DST-DOWN" not in k.tail()
            assert h.screen.stats["forward_failed"] == 0                # no ping went toward the next hop
        finally:
            k.stop()
    finally:
        h.stop()
