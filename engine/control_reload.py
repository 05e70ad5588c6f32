"""`reload` of the control interface (engine/control.py): one handler per part.

Each part is validated whole before anything changes; a refused part keeps its old version in
force and says why as path:line:col. rules, lists and model are what SIGHUP reloads; accounts
and sip are only reloaded here (smpp_proxy/live_accounts.py and sip_screen/live_settings.py
say what a reload changes in live binds and calls, and what needs a restart).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from .reload_counts import count_reload

log = logging.getLogger("telfilter")

RELOAD_PARTS = ("rules", "lists", "model", "accounts", "sip")


class ReloadCommands:
    """Mixin of ControlServer (pipe, proxy, sip, args, _rules_gen)."""

    async def reload(self, what=None, full=False) -> dict:
        what = list(RELOAD_PARTS) if what is None else what
        if not isinstance(what, list) or not what or any(w not in RELOAD_PARTS for w in what):
            return {"ok": False, "error": f"reload what={what!r}: a list of {', '.join(RELOAD_PARTS)} (absent = all)"}
        if not isinstance(full, bool):
            return {"ok": False, "error": f"reload full={full!r}: true or false"}
        ans: dict = {}
        for part in RELOAD_PARTS:            # the fixed order: rules before the model, as SIGHUP
            if part in what:
                ans[part] = await (self._reload_lists(full) if part == "lists" else getattr(self, f"_reload_{part}")())
        failed = [p for p, a in ans.items() if not a["ok"]]
        ans["ok"] = not failed
        if failed:
            ans["error"] = (f"reload refused for {', '.join(failed)}; what failed kept its old version in force")
        return ans

    async def _reload_rules(self) -> dict:
        from .serve import reload_rules
        errors = [str(e) for e in await reload_rules(self.pipe)]
        ans = {"ok": not errors, "errors": errors, "rules": len(self.pipe.rules.rules), "generation": self._rules_gen()}
        if not errors:          # what this swap changed from the set it replaced (pipeline.install_rules)
            ans["changes"] = self.pipe.rules_changes
        if not errors and self.pipe.rules.warnings:     # what loads but never takes effect, as `rules check` says it
            ans["warnings"] = [str(w) for w in self.pipe.rules.warnings[:100]]
        return ans

    async def _reload_lists(self, full=False) -> dict:
        from .serve import reload_lists
        warnings: list = []
        err = await reload_lists(self.pipe, warnings, full=full)
        ans = {"ok": err is None, "error": err}
        if err is None:         # the lists whose files had changed (every one: full) and those kept as they were
            r = self.pipe.lists_reloads
            ans["read"], ans["kept"] = r["last_read"], r["last_kept"]
        if warnings:            # done, but e.g. a corrupt snapshot refused and its previous generation loaded
            ans["warnings"] = warnings[:100]
        return ans

    async def _reload_model(self) -> dict:
        from .serve import _reload_model
        err = await _reload_model(self.pipe)
        ans = {"ok": err is None, "error": err,
               "version": str(self.pipe.model.version) if self.pipe.model is not None else None}
        if err is None and getattr(self.pipe, "engine_needs_restart", None):
            ans["needs_restart"] = list(self.pipe.engine_needs_restart)    # [engine]: read at start only
        return ans

    def _config_dir(self) -> Path:
        return Path(self.pipe.settings.config_dir)

    async def _reload_accounts(self) -> dict:
        from dataclasses import fields
        from .configcheck import load_component
        from .smpp_proxy.accounts import load_smpp_settings
        from .smpp_proxy.live_accounts import apply_accounts
        if self.proxy is None:
            return {"ok": False, "errors": ["no SMPP proxy runs in this process"]}
        cdir, errors = self._config_dir(), []
        smpp = load_component(cdir / "smpp.toml", load_smpp_settings, cdir, errors)
        new = dict(smpp.accounts) if smpp is not None else {}
        if self.args is not None:
            from .credentials import esme_accounts
            mutual = bool(smpp.tls_listen and smpp.tls_client_ca) if smpp is not None else None
            extra = esme_accounts(self.args, errors, warn=False, mutual_tls=mutual)
        else:                            # no command line known: keep what did not come from smpp.toml
            extra = [a for a in self.proxy.accounts.values() if not a.origin.startswith(str(cdir / "smpp.toml"))]
        if errors:
            log.error("accounts reload refused, the old accounts stay in force: %s", "; ".join(errors))
            count_reload(self.pipe, "accounts", False)
            return {"ok": False, "errors": errors}
        from .credentials import merge_accounts
        merge_accounts(new, extra)       # as at start: the command line, file and environment win (said)
        ans = {"ok": True, **apply_accounts(self.proxy, new)}
        count_reload(self.pipe, "accounts", True)
        running = self.proxy.settings
        overridden = {"accounts"}        # settings the command line decides are not the file's to change
        if self.args is None:
            overridden.add("listen")
        else:
            from .credentials import SMSC_PASSWORD_ENV
            a = self.args
            overridden |= {k for k, v in (("listen", a.smpp_listen), ("smsc", a.smsc), ("smsc_system_id", a.smsc_system_id),
                                          ("smsc_password", a.smsc_password or getattr(a, "smsc_password_file", None)
                                           or os.environ.get(SMSC_PASSWORD_ENV))) if v}
        overridden.add("warnings")      # what the load said (an expired certificate), not a setting
        if self.proxy.tls_server is not None and smpp.tls_listen == running.tls_listen:
            # a certificate renewed (in place or under another name) is taken by the next handshakes; the files
            # were loaded and checked with smpp.toml (tls.check_tls), so this cannot fail but on a race
            ans["tls_reloaded"] = self._reload_tls(smpp, running)
        restart = [f.name for f in fields(smpp) if f.name not in overridden
                   and getattr(smpp, f.name) != getattr(running, f.name)]
        if restart:
            ans["needs_restart"] = restart
            log.warning("smpp.toml: %s changed; in force after a restart (a reload applies the accounts only)",
                        ", ".join(restart))
        return ans

    def _reload_tls(self, smpp, running) -> bool:
        from .smpp_proxy.tls import crl_next_update, server_context
        try:        # the CRL too: read again whether or not its path changed (tls_crl.py)
            ctx = server_context(smpp.tls_cert, smpp.tls_key, smpp.tls_client_ca, smpp.tls_client_crl)
        except (OSError, ValueError) as e:          # ssl.SSLError is an OSError
            log.error("TLS certificate reload refused, the old one stays in force: %s", e)
            return False
        # connections up keep their session; a new context has new session-ticket keys, so a client resumes no
        # session of the old one: a certificate revoked since is checked at its next handshake
        self.proxy.tls_server.context = ctx
        self.proxy.tls_server.crl_next_update = crl_next_update(smpp)
        for k in ("tls_cert", "tls_key", "tls_client_ca", "tls_client_crl"):
            setattr(running, k, getattr(smpp, k))
        running.warnings = smpp.warnings
        for w in smpp.warnings:
            log.warning("%s", w)
        return True

    async def _reload_sip(self) -> dict:
        from .configcheck import load_component
        from .sip_screen.live_settings import apply_sip_settings
        from .sip_screen.settings import load_sip_settings, udp_family_mismatch
        cdir, errors = self._config_dir(), []
        new = load_component(cdir / "sip.toml", load_sip_settings, cdir, errors)
        if errors:
            log.error("sip.toml reload refused, the old settings stay in force: %s", "; ".join(errors))
            count_reload(self.pipe, "sip", False)
            return {"ok": False, "errors": errors}
        if self.sip is None:
            count_reload(self.pipe, "sip", True)
            return {"ok": True, "running": False, "note": "the SIP screen is off (--sip-listen off): file checked only"}
        overrides = {}
        a = self.args
        if a is not None:
            if getattr(a, "sip_listen", None):
                overrides["listen"] = a.sip_listen
            if getattr(a, "sip_next_hop", None):
                overrides["next_hop"] = a.sip_next_hop
            if getattr(a, "sip_allow_networks", None):
                overrides["allow_networks"] = [n.strip() for n in a.sip_allow_networks.split(",") if n.strip()]
        # (the listener stays what it is until a restart: a next hop of the other family could never be sent to)
        hop = overrides.get("next_hop") or new.next_hop
        why = udp_family_mismatch(self.sip.s.listen, hop) if hop else None
        if why:
            log.error("sip.toml reload refused, the old settings stay in force: %s", why)
            count_reload(self.pipe, "sip", False)
            return {"ok": False, "errors": [f"{cdir / 'sip.toml'}: next_hop: {why}"]}
        ans = {"ok": True, "running": True, **apply_sip_settings(self.sip, new, overrides)}
        count_reload(self.pipe, "sip", True)
        return ans
