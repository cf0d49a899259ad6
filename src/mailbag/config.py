"""Server configuration: defaults, the TOML file, and command-line overrides.

Every error names the key and what is wrong with it, because a person reads it.
"""

from __future__ import annotations

import os
import socket
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError

PROTOCOLS: tuple[str, ...] = ("smtp", "lmtp", "pop3", "pop3s", "imap", "imaps")
DEFAULT_PORTS: dict[str, int] = {
    "smtp": 1025,
    "lmtp": 2424,
    "pop3": 1110,
    "pop3s": 1995,
    "imap": 1143,
    "imaps": 1993,
}
POP3_DELETE_MODES = ("remove", "keep-seen")


def default_data_dir() -> Path:
    env = os.environ.get("MAILBAG_DATA_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mailbag"


@dataclass(slots=True, frozen=True)
class Config:
    data_dir: Path = field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    hostname: str = field(default_factory=lambda: socket.gethostname() or "localhost")
    # None = listener off; 0 = let the OS pick.
    ports: dict[str, int | None] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    default_domain: str = "localhost"
    local_domains: tuple[str, ...] = ("localhost",)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # RFC 5034 §4 / RFC 2595 §3.1: no plaintext passwords over clear connections,
    # except from loopback where nothing crosses a wire.
    allow_plaintext_auth: bool = False
    plaintext_auth_loopback: bool = True
    max_message_size: int = 50 * 1024 * 1024
    max_recipients: int = 100
    # RFC 5321 §4.5.3.2.7: 5 minutes; RFC 1939 §3: at least 10 minutes.
    smtp_idle_timeout: float = 300.0
    pop3_idle_timeout: float = 600.0
    # RFC 9051 §5.4: an autologout timer must be at least 30 minutes.
    imap_idle_timeout: float = 1800.0
    # Longest time one command line or one DATA/literal may take to arrive.
    command_timeout: float = 300.0
    pop3_delete_mode: str = "remove"
    pop3_apop: bool = False
    # Dovecot's auth_penalty: 2 s doubling up to 15 s.
    auth_penalty_base: float = 2.0
    auth_penalty_max: float = 15.0
    log_level: str = "INFO"
    # "asyncio" (the standard loop) or "uvloop" (optional extra `mailbag[uvloop]`).
    event_loop: str = "asyncio"
    # Server processes sharing the store (net/workers.py); 1 = this process.
    workers: int = 1

    def with_overrides(self, **kw: Any) -> Config:
        return replace(self, **kw)

    def is_local_domain(self, domain: str) -> bool:
        return domain.lower() in self.local_domains


def parse_port(value: object, where: str) -> int | None:
    if isinstance(value, str):
        if value.strip().lower() == "off":
            return None
        try:
            value = int(value.strip())
        except ValueError:
            raise ConfigError(
                f'{where}: expected a port number 0-65535 or "off", got {value!r}'
            ) from None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ConfigError(f'{where}: expected a port number 0-65535 or "off", got {value!r}')
    return value


def _expect(value: object, kind: type | tuple[type, ...], where: str, what: str) -> Any:
    if (
        isinstance(value, bool)
        and kind is not bool
        and bool not in (kind if isinstance(kind, tuple) else (kind,))
    ):
        raise ConfigError(f"{where}: expected {what}, got {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(f"{where}: expected {what}, got {value!r}")
    return value


EVENT_LOOPS = ("asyncio", "uvloop")
MAX_WORKERS = 64

_SCHEMA: dict[str, dict[str, str]] = {
    "server": {
        "host": "host",
        "hostname": "hostname",
        "data_dir": "data_dir",
        "log_level": "log_level",
        "event_loop": "event_loop",
        "workers": "workers",
    },
    "listeners": {p: p for p in PROTOCOLS},
    "tls": {
        "cert": "tls_cert",
        "key": "tls_key",
        "allow_plaintext_auth": "allow_plaintext_auth",
        "plaintext_auth_loopback": "plaintext_auth_loopback",
    },
    "domains": {"default": "default_domain", "local": "local_domains"},
    "limits": {
        "max_message_size": "max_message_size",
        "max_recipients": "max_recipients",
        "smtp_idle_timeout": "smtp_idle_timeout",
        "pop3_idle_timeout": "pop3_idle_timeout",
        "imap_idle_timeout": "imap_idle_timeout",
        "command_timeout": "command_timeout",
    },
    "pop3": {"delete_mode": "pop3_delete_mode", "apop": "pop3_apop"},
    "auth": {"penalty_base": "auth_penalty_base", "penalty_max": "auth_penalty_max"},
}


def load_config(path: Path | None) -> Config:
    """Read a TOML file (or nothing) into a Config with defaults filled in."""
    cfg = Config()
    if path is None:
        return cfg
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    return apply_table(cfg, raw, str(path))


def apply_table(cfg: Config, raw: dict[str, Any], source: str) -> Config:
    kw: dict[str, Any] = {}
    ports = dict(cfg.ports)
    for section, table in raw.items():
        if section not in _SCHEMA:
            raise ConfigError(
                f"{source}: unknown section [{section}] (known: {', '.join(sorted(_SCHEMA))})"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        for key, value in table.items():
            where = f"{source}: [{section}] {key}"
            if key not in _SCHEMA[section]:
                raise ConfigError(
                    f"{where}: unknown key (known: {', '.join(sorted(_SCHEMA[section]))})"
                )
            if section == "listeners":
                ports[key] = parse_port(value, where)
                continue
            name = _SCHEMA[section][key]
            kw[name] = _convert(name, value, where)
    kw["ports"] = ports
    out = replace(cfg, **kw)
    return _finish(out, source)


def _convert(name: str, value: Any, where: str) -> Any:
    if name in ("data_dir", "tls_cert", "tls_key"):
        return Path(_expect(value, str, where, "a path string")).expanduser()
    if name in ("allow_plaintext_auth", "plaintext_auth_loopback", "pop3_apop"):
        return _expect(value, bool, where, "true or false")
    if name == "workers":
        v = _expect(value, int, where, "a number of processes")
        if not 1 <= v <= MAX_WORKERS:
            raise ConfigError(f"{where}: expected 1 to {MAX_WORKERS} processes, got {v}")
        return v
    if name in ("max_message_size", "max_recipients"):
        v = _expect(value, int, where, "a positive integer")
        if v <= 0:
            raise ConfigError(f"{where}: expected a positive integer, got {v}")
        return v
    if name.endswith("timeout") or name.startswith("auth_penalty"):
        v = _expect(value, (int, float), where, "a number of seconds")
        if v <= 0:
            raise ConfigError(f"{where}: expected a positive number of seconds, got {v}")
        return float(v)
    if name == "local_domains":
        if not isinstance(value, list) or not all(isinstance(d, str) and d for d in value):
            raise ConfigError(f"{where}: expected a list of domain names, got {value!r}")
        return tuple(d.lower() for d in value)
    if name == "pop3_delete_mode":
        if value not in POP3_DELETE_MODES:
            raise ConfigError(
                f"{where}: expected one of {', '.join(POP3_DELETE_MODES)}, got {value!r}"
            )
        return value
    if name == "event_loop":
        if value not in EVENT_LOOPS:
            raise ConfigError(f"{where}: expected one of {', '.join(EVENT_LOOPS)}, got {value!r}")
        return value
    if name == "log_level":
        v = _expect(value, str, where, "a log level").upper()
        if v not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"{where}: expected DEBUG, INFO, WARNING or ERROR, got {value!r}")
        return v
    v = _expect(value, str, where, "a string")
    if not v:
        raise ConfigError(f"{where}: must not be empty")
    return v.lower() if name == "default_domain" else v


def _finish(cfg: Config, source: str) -> Config:
    """Cross-field rules."""
    domains = tuple(dict.fromkeys((cfg.default_domain.lower(), *cfg.local_domains)))
    cfg = replace(cfg, default_domain=cfg.default_domain.lower(), local_domains=domains)
    if (cfg.tls_cert is None) != (cfg.tls_key is None):
        raise ConfigError(f"{source}: [tls] cert and key must be given together")
    return cfg


def field_names() -> list[str]:
    return [f.name for f in fields(Config)]
