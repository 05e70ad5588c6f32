"""The SMSC simulator's send_mo and send_deliver send a deliver_sm only on a receiver or transceiver bind (SMPP 3.4
§2.3: a transmitter session gets no deliver_sm), of the system_id asked for when one is: they took the first bound
session, a transmitter bind included. With smpplib (a client nobody here wrote) as the ESME."""
import select
import time

import pytest
import smpplib.client

from engine.loopthread import LoopThread
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.simulator import SmscSimulator



@pytest.fixture
def smsc():
    lt = LoopThread()
    lt.start_loop()
    sim = lt.call(SmscSimulator(receipt_delay=None).start())
    clients = []

    def bind(kind, system_id="acme"):
        c = smpplib.client.Client("127.0.0.1", sim.port, timeout=5)
        clients.append(c)
        c.connect()
        getattr(c, f"bind_{kind}")(system_id=system_id, password="x")
        return c
    try:
        yield lt, sim, bind
    finally:
        for c in clients:
            c.disconnect()
        lt.call(sim.stop())
        lt.stop_loop()


def _nothing_for(client) -> bool:
    return select.select([client._socket], [], [], 0.3)[0] == []


def _mo(source="84912345678"):
    return P.DeliverSm(sequence_number=0, source_addr=source, destination_addr="5656", short_message=b"S 0912")


def test_a_transmitter_bind_alone_gets_no_mo_and_the_sender_is_told(smsc):
    lt, sim, bind = smsc
    tx = bind("transmitter")
    assert lt.run(sim.send_mo, "84912345678", "5656", "DK") is False
    assert lt.run(sim.send_deliver, _mo()) is False
    assert _nothing_for(tx)
    rx = bind("receiver")
    assert lt.run(sim.send_mo, "84912345678", "5656", "DK") is True
    r = rx.read_pdu()
    assert r.command == "deliver_sm" and r.short_message == b"DK" and r.source_addr == b"84912345678"
    assert _nothing_for(tx)


@pytest.mark.parametrize("kind", ["receiver", "transceiver"])
def test_mo_goes_to_the_receiving_bind_not_the_transmitter_bound_first(smsc, kind):
    lt, sim, bind = smsc
    tx = bind("transmitter")
    rx = bind(kind)
    assert lt.run(sim.send_mo, "84912345678", "5656", "DK") is True
    assert lt.run(sim.send_deliver, _mo("84912345679")) is True
    got = [rx.read_pdu(), rx.read_pdu()]
    assert [p.command for p in got] == ["deliver_sm", "deliver_sm"]
    assert [p.source_addr for p in got] == [b"84912345678", b"84912345679"]
    assert _nothing_for(tx)


def test_mo_goes_to_a_receiving_bind_of_the_system_id_asked_for(smsc):
    lt, sim, bind = smsc
    other = bind("transceiver", "other")
    tx = bind("transmitter", "acme")
    assert lt.run(lambda: sim.send_mo("84912345678", "5656", "DK", system_id="acme")) is False     # its transmitter only
    rx = bind("receiver", "acme")
    assert lt.run(lambda: sim.send_mo("84912345678", "5656", "DK", system_id="acme")) is True
    assert lt.run(lambda: sim.send_deliver(_mo("84912345679"), system_id="acme")) is True
    assert [rx.read_pdu().source_addr for _ in range(2)] == [b"84912345678", b"84912345679"]
    assert _nothing_for(other) and _nothing_for(tx)
    assert lt.run(lambda: sim.send_mo("84912345670", "5656", "DK", system_id="nobody")) is False
