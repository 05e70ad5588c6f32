// An independent ESME (node-smpp, https://github.com/farhadi/node-smpp) for tests/test_node_smpp_interop.py.
// Usage: node esme.js PORT SYSTEM_ID PASSWORD [N]
// Binds as a transceiver to 127.0.0.1:PORT, then, one after the other:
//   qc      submit_sm "[QC] ..." from a plain number, text given as a string with no data_coding: node-smpp's
//           default then sends GSM 03.38 septets under data_coding 1 ("[" as ESC "<", "@" as 0x00)
//   qc_dc0  the same text with data_coding 0: the same GSM bytes, under the SMSC default alphabet
//   allowed submit_sm of ordinary text with an "@" (so its GSM bytes are recognisable at the SMSC), same default
//           encoding, registered_delivery 1; N times (default 1), one after the other
// and waits for the delivery receipts of the allowed messages (each answered with deliver_sm_resp), then unbinds.
// Prints one JSON line per step on stdout; exits 0 when it got this far, 1 on any error or after 20 s.
'use strict';
const smpp = require('smpp');

const [port, systemId, password, count] = process.argv.slice(2);
const n = Number(count || 1);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const fail = (why) => { out({step: 'error', why: String(why), receipted: [...receipted]}); process.exit(1); };
setTimeout(() => fail('timeout after 20 s'), 20000).unref();

const session = smpp.connect({url: `smpp://127.0.0.1:${port}`, auto_enquire_link_period: 0});
session.on('error', fail);

const receipted = new Set();
let receiptResolve;
const allReceipts = new Promise((r) => { receiptResolve = r; });
const allowedIds = [];
const checkReceipts = () => {
  if (allowedIds.length === n && allowedIds.every((id) => receipted.has(id))) receiptResolve();
};
session.on('deliver_sm', (pdu) => {
  session.send(pdu.response());
  const text = Buffer.isBuffer(pdu.short_message) ? pdu.short_message.toString('latin1')
    : (pdu.short_message && pdu.short_message.message) || '';
  const rec = {step: 'deliver_sm', esm_class: pdu.esm_class, receipted_message_id: pdu.receipted_message_id || null,
               text: String(text), destination_addr: pdu.destination_addr};
  out(rec);
  if (pdu.esm_class & 0x04) { receipted.add(rec.receipted_message_id); checkReceipts(); }
});

// distinct texts, so that more than three messages to one recipient are not a content flood
const room = (i) => String.fromCharCode(65 + (i % 26)) + String.fromCharCode(65 + Math.floor(i / 26) % 26);
const call = (method, params) => new Promise((resolve) => session[method](params, resolve));

session.on('connect', async () => {
  try {
    const b = await call('bind_transceiver', {system_id: systemId, password: password});
    out({step: 'bind', command_status: b.command_status});
    if (b.command_status !== 0) return fail('bind refused');

    const qc = await call('submit_sm', {source_addr: '0901234567', destination_addr: '0912000001',
                                        short_message: '[QC] Giam gia 50% @ shop ABC $5. TC gui 5656'});
    out({step: 'qc', command_status: qc.command_status, message_id: qc.message_id || null});

    const qc0 = await call('submit_sm', {source_addr: '0901234567', destination_addr: '0912000001', data_coding: 0,
                                         short_message: '[QC] Giam gia 50% @ shop ABC $5. TC gui 5656'});
    out({step: 'qc_dc0', command_status: qc0.command_status, message_id: qc0.message_id || null});

    for (let i = 0; i < n; i++) {
      const ok = await call('submit_sm', {source_addr: '0901234567', destination_addr: '0912000001',
                                          registered_delivery: 1,
                                          short_message: `Hi Lan, the meeting @ 3pm moved to room ${room(i)} tomorrow. See you there`});
      out({step: 'allowed', command_status: ok.command_status, message_id: ok.message_id || null});
      if (ok.command_status !== 0) return fail('allowed submit refused');
      allowedIds.push(ok.message_id);
    }
    checkReceipts();
    await allReceipts;
    out({step: 'receipts', ids: allowedIds.filter((id) => receipted.has(id))});
    await call('unbind', {});
    out({step: 'unbound'});
    session.close();
    process.exit(0);
  } catch (e) {
    fail(e && e.stack || e);
  }
});
