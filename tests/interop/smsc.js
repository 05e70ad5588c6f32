// An independent SMSC (node-smpp, https://github.com/farhadi/node-smpp) for tests/test_node_smpp_interop.py.
// Usage: node smsc.js MODE      (MODE: "after" or "before")
// Listens on 127.0.0.1 (a free port, printed first as {"port": N}) and behaves like the SMSCs of issue #15:
// it refuses bind_transceiver (ESME_RINVCMDID), so the proxy falls back to a transmitter + a receiver bind,
// and for every submit_sm with a receipt requested it sends the delivery receipt on the receiver bind in the
// same tick as the submit_sm_resp on the transmitter bind: right after it ("after") or before it ("before").
// Prints one JSON line per event on stdout; stops on SIGTERM.
'use strict';
const smpp = require('smpp');

const mode = process.argv[2] || 'after';
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
let nextId = 4200;
const receivers = [];

function receipt(submit, id) {
  const rx = receivers.find((s) => !s.closed);
  if (!rx) { out({ev: 'no_receiver', id}); return; }
  const now = new Date().toISOString().replace(/[-T:]/g, '').slice(2, 12);
  rx.deliver_sm({
    source_addr: submit.destination_addr, destination_addr: submit.source_addr, esm_class: 0x04,
    short_message: `id:${id} sub:001 dlvrd:001 submit date:${now} done date:${now} stat:DELIVRD err:000 text:`,
    receipted_message_id: id, message_state: 2,
  }, (resp) => out({ev: 'receipt_resp', id, command_status: resp.command_status}));
  out({ev: 'receipt_sent', id});
}

const server = smpp.createServer((session) => {
  session.on('error', (e) => out({ev: 'session_error', why: String(e)}));
  session.on('close', () => { session.closed = true; });
  session.on('bind_transceiver', (pdu) => {
    out({ev: 'bind', kind: 'transceiver', command_status: smpp.ESME_RINVCMDID});
    session.send(pdu.response({command_status: smpp.ESME_RINVCMDID}));
  });
  for (const kind of ['transmitter', 'receiver']) {
    session.on(`bind_${kind}`, (pdu) => {
      out({ev: 'bind', kind, command_status: 0});
      session.send(pdu.response({system_id: 'NODESMSC'}));
      if (kind === 'receiver') receivers.push(session);
    });
  }
  session.on('enquire_link', (pdu) => session.send(pdu.response()));
  session.on('unbind', (pdu) => { session.send(pdu.response()); session.close(); });
  session.on('submit_sm', (pdu) => {
    const id = String(nextId++);
    const sm = Buffer.isBuffer(pdu.short_message) ? pdu.short_message : pdu.short_message.message;
    out({ev: 'submit', id, data_coding: pdu.data_coding, registered_delivery: pdu.registered_delivery,
         short_message: typeof sm === 'string' ? sm : Buffer.from(sm || []).toString('hex')});
    const wants = (pdu.registered_delivery & 0x03) !== 0;
    if (wants && mode === 'before') receipt(pdu, id);
    session.send(pdu.response({message_id: id}));
    if (wants && mode === 'after') receipt(pdu, id);
  });
});

server.listen(0, '127.0.0.1', () => out({port: server.address().port}));
process.on('SIGTERM', () => { out({ev: 'stopped'}); process.exit(0); });
