"""The `mailbag` command: serve, user management, and local delivery."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import click

from ..auth.addresses import BadAddress, domain_of, normalize_address
from ..auth.passwords import hash_password
from ..config import EVENT_LOOPS, MAX_WORKERS, PROTOCOLS, Config, load_config, parse_port
from ..errors import AlreadyExists, ConfigError, MailbagError, NotFound
from ..store.interface import Store

T = TypeVar("T")

# sysexits.h, as MTAs expect from a mailbox command.
EX_USAGE = 64
EX_NOUSER = 67
EX_SOFTWARE = 70
EX_CANTCREAT = 73
EX_TEMPFAIL = 75
EX_CONFIG = 78


def fail(message: str, code: int = 1) -> None:
    click.echo(f"mailbag: {message}", err=True)
    sys.exit(code)


def build_config(config_path: Path | None, data_dir: Path | None, **overrides: Any) -> Config:
    try:
        cfg = load_config(config_path)
    except ConfigError as e:
        fail(str(e), EX_CONFIG)
        raise
    if data_dir is not None:
        cfg = replace(cfg, data_dir=data_dir)
    clean = {k: v for k, v in overrides.items() if v is not None}
    if clean:
        cfg = replace(cfg, **clean)
    return cfg


def prepare_data_dir(path: Path) -> None:
    """Create the data dir (private) and check we can write there."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Named by process: the workers of `serve --workers` check at once.
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        fail(
            f"data dir {path} is not usable: {e.strerror or e}. "
            "Choose another with --data-dir or MAILBAG_DATA_DIR.",
            EX_CANTCREAT,
        )


def open_store(cfg: Config) -> Store:
    from ..store.sqlite.backend import SQLiteStore

    # A short-lived process: no sessions to tell of what others commit.
    return SQLiteStore(cfg.data_dir, follow_interval=None)


def with_store(cfg: Config, action: Callable[[Store], Awaitable[T]]) -> T:
    prepare_data_dir(cfg.data_dir)

    async def run() -> T:
        store = open_store(cfg)
        await store.open()
        try:
            return await action(store)
        finally:
            await store.close()

    return asyncio.run(run())


def setup_logging(level: str) -> None:
    from ..net.workers import worker_identity

    # The workers of `serve --workers` share the parent's stderr.
    worker = worker_identity()
    tag = "" if worker is None else f" [w{worker[0]}]"
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s %(levelname)s{tag} %(name)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
        stream=sys.stderr,
    )


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="TOML configuration file.",
)
data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where mail and the database live (default: $MAILBAG_DATA_DIR or ~/.local/share/mailbag).",
)


class PortType(click.ParamType):  # type: ignore[type-arg]
    name = "PORT|off"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or isinstance(value, int):
            return value
        try:
            port = parse_port(value, f"--{param.name if param else 'port'}")
        except ConfigError as e:
            self.fail(str(e), param, ctx)
        return "off" if port is None else port


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mailbag")
def main() -> None:
    """mailbag: IMAP, POP3, SMTP and LMTP on one durable mail store."""


def _port_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for proto in reversed(PROTOCOLS):
        f = click.option(
            f"--{proto}-port",
            proto.replace("-", "_") + "_port",
            type=PortType(),
            default=None,
            help=f"{proto} port (0 = any free port, off = no listener)",
        )(f)
    return f


@main.command()
@config_option
@data_dir_option
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@_port_options
@click.option(
    "--log-level",
    default=None,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.option(
    "--event-loop",
    default=None,
    type=click.Choice(list(EVENT_LOOPS)),
    help="asyncio (default) or uvloop (pip install 'mailbag[uvloop]').",
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1, MAX_WORKERS),
    help="Server processes sharing the store (default 1).",
)
def serve(
    config_path: Path | None,
    data_dir: Path | None,
    host: str | None,
    log_level: str | None,
    event_loop: str | None,
    workers: int | None,
    **ports: Any,
) -> None:
    """Run the mail server until SIGTERM or SIGINT."""
    cfg = build_config(
        config_path,
        data_dir,
        host=host,
        log_level=log_level.upper() if log_level else None,
        event_loop=event_loop,
        workers=workers,
    )
    port_map = dict(cfg.ports)
    for proto in PROTOCOLS:
        value = ports.get(f"{proto}_port")
        if value is not None:
            port_map[proto] = None if value == "off" else int(value)
    cfg = replace(cfg, ports=port_map)
    setup_logging(cfg.log_level)
    prepare_data_dir(cfg.data_dir)
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if cfg.event_loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            fail(
                "event_loop uvloop: uvloop is not installed (pip install 'mailbag[uvloop]')",
                EX_CONFIG,
            )
        loop_factory = uvloop.new_event_loop
    from ..net.workers import worker_identity

    worker = worker_identity()
    if worker is None and cfg.workers > 1:
        sys.exit(_supervise(cfg))
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            code = runner.run(_serve(cfg, worker))
    except ConfigError as e:
        fail(str(e), EX_CONFIG)
    except KeyboardInterrupt:
        code = 0
    sys.exit(code)


def _print_started(
    cfg: Config, listening: list[tuple[str, str, int]], tls_created: bool, tls_fingerprint: str
) -> None:
    for protocol, host, port in listening:
        host = f"[{host}]" if ":" in host else host
        print(f"mailbag: {protocol} listening on {host}:{port}", flush=True)
    if tls_created:
        print(
            f"mailbag: created a self-signed TLS certificate in {cfg.data_dir / 'tls'}", flush=True
        )
    print(f"mailbag: TLS certificate SHA-256 fingerprint {tls_fingerprint}", flush=True)


def _print_no_users_hint(cfg: Config) -> None:
    print(
        "mailbag: no users yet; add one with: "
        f"mailbag user add alice@{cfg.default_domain} --data-dir {cfg.data_dir}",
        flush=True,
    )


def _supervise(cfg: Config) -> int:
    """`serve --workers N`: bind, start N worker processes, supervise them."""
    from ..net.server import tls_files
    from ..net.tls import fingerprint, server_context
    from ..net.workers import Supervisor, bind_listeners

    try:
        # Before the workers: the store is created or migrated and swept by
        # one process, and a store that cannot open fails here, once.
        accounts = with_store(cfg, lambda s: s.list_accounts())
        cert, key, created = tls_files(cfg)
        server_context(cert, key)  # a bad certificate is one error, not one per worker
        listeners = bind_listeners(cfg)
    except ConfigError as e:
        fail(str(e), EX_CONFIG)
        return EX_CONFIG
    except MailbagError as e:
        fail(f"cannot open the store: {e}", EX_TEMPFAIL)
        return EX_TEMPFAIL
    supervisor = Supervisor(cfg.workers, listeners, sys.argv[1:])
    supervisor.watch_signals()
    if not supervisor.start():
        fail("a worker process did not start (its log is above)", EX_TEMPFAIL)
        return EX_TEMPFAIL
    listening = [
        (protocol, str(sock.getsockname()[0]), int(sock.getsockname()[1]))
        for protocol, socks in listeners.items()
        for sock in socks
    ]
    _print_started(cfg, listening, created, fingerprint(cert))
    if not accounts:
        _print_no_users_hint(cfg)
    code = supervisor.run()
    print("mailbag: stopped", flush=True)
    return code


async def _serve(cfg: Config, worker: tuple[int, int] | None = None) -> int:
    from ..net.memory import fix_malloc_threshold
    from ..net.server import MailServer
    from ..net.workers import inherited_listeners, report_ready, watch_parent

    fix_malloc_threshold()
    # Handlers first: a SIGTERM that arrives while we start must still stop us cleanly.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if worker is None:
        server = MailServer(cfg)
    else:
        server = MailServer(cfg, sockets=inherited_listeners(), worker=worker)
    listening = await server.start()
    if worker is None:
        _print_started(
            cfg,
            [(item.protocol, item.host, item.port) for item in listening],
            server.tls_created,
            server.tls_fingerprint,
        )
        if not await server.store.list_accounts():
            _print_no_users_hint(cfg)
    else:
        report_ready()
        watch_parent(loop, stop.set)
    # Everything alive now (modules, config, the server) lives as long as the
    # process: moved out of the collector's generations, a full collection
    # no longer walks it, and such a collection is a pause of the one event
    # loop (in a big test process one measured ~85 ms).
    gc.collect()
    gc.freeze()
    await stop.wait()
    logging.getLogger("mailbag.server").info("stopping")
    await server.stop()
    if worker is None:
        print("mailbag: stopped", flush=True)
    return 0


# ---- users -------------------------------------------------------------------


@main.group()
def user() -> None:
    """Add, list, change and delete users."""


def _read_password(password_stdin: bool, confirm: bool = True) -> str:
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    if not password:
        fail("empty password", EX_USAGE)
    return password


def _address(cfg: Config, address: str) -> str:
    try:
        normal = normalize_address(address, cfg.default_domain)
    except BadAddress as e:
        fail(str(e), EX_USAGE)
        raise
    return normal


@user.command("add")
@click.argument("address")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@config_option
@data_dir_option
def user_add(
    address: str, password_stdin: bool, config_path: Path | None, data_dir: Path | None
) -> None:
    """Add a user; a bare name means the default domain."""
    cfg = build_config(config_path, data_dir)
    normal = _address(cfg, address)
    if not cfg.is_local_domain(domain_of(normal)):
        click.echo(
            f"mailbag: warning: {domain_of(normal)} is not a local domain; mail for it will be "
            "refused until it is listed in [domains] local",
            err=True,
        )
    password = _read_password(password_stdin)

    async def act(store: Store) -> None:
        await store.create_account(normal, hash_password(password))

    try:
        with_store(cfg, act)
    except AlreadyExists:
        fail(f"user {normal} exists already", 1)
    click.echo(f"mailbag: added {normal}")


@user.command("list")
@config_option
@data_dir_option
def user_list(config_path: Path | None, data_dir: Path | None) -> None:
    """List users."""
    cfg = build_config(config_path, data_dir)
    for account in with_store(cfg, lambda s: s.list_accounts()):
        click.echo(account.address)


@user.command("passwd")
@click.argument("address")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@config_option
@data_dir_option
def user_passwd(
    address: str, password_stdin: bool, config_path: Path | None, data_dir: Path | None
) -> None:
    """Change a user's password."""
    cfg = build_config(config_path, data_dir)
    normal = _address(cfg, address)
    password = _read_password(password_stdin)

    async def act(store: Store) -> bool:
        account = await store.get_account(normal)
        if account is None:
            return False
        await store.set_password_hash(account.id, hash_password(password))
        return True

    if not with_store(cfg, act):
        fail(f"no such user {normal}", EX_NOUSER)
    click.echo(f"mailbag: password changed for {normal}")


@user.command("delete")
@click.argument("address")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@config_option
@data_dir_option
def user_delete(address: str, yes: bool, config_path: Path | None, data_dir: Path | None) -> None:
    """Delete a user and all their mail."""
    cfg = build_config(config_path, data_dir)
    normal = _address(cfg, address)
    if not yes:
        click.confirm(f"Delete {normal} and all their mail?", abort=True)

    async def act(store: Store) -> bool:
        account = await store.get_account(normal)
        if account is None:
            return False
        await store.delete_account(account.id)
        return True

    try:
        found = with_store(cfg, act)
    except NotFound:
        found = False
    if not found:
        fail(f"no such user {normal}", EX_NOUSER)
    click.echo(f"mailbag: deleted {normal}")


# ---- local delivery --------------------------------------------------------------


@main.command()
@click.argument("addresses", nargs=-1, required=True)
@click.option(
    "-f",
    "--from",
    "sender",
    default=None,
    help="Envelope sender (default: $SENDER, as Postfix sets it, or empty).",
)
@config_option
@data_dir_option
def deliver(
    addresses: tuple[str, ...], sender: str | None, config_path: Path | None, data_dir: Path | None
) -> None:
    """Deliver a message from standard input (an MTA's mailbox command).

    Exit 0 only when the message is durable for every recipient; 67 when a
    recipient does not exist (or the message is refused for good), 75 for a
    temporary failure.
    """
    from ..session.delivery import Delivery, TraceInfo

    cfg = build_config(config_path, data_dir)
    setup_logging("WARNING")
    data = sys.stdin.buffer.read(cfg.max_message_size + 1)
    data = to_crlf(data)
    envelope_from = sender if sender is not None else os.environ.get("SENDER", "")

    async def act(store: Store) -> list[Any]:
        delivery = Delivery(store, cfg)
        return await delivery.deliver(
            envelope_from, list(addresses), data, TraceInfo(protocol="local")
        )

    try:
        results = with_store(cfg, act)
    except MailbagError as e:
        fail(f"delivery failed: {e}", EX_TEMPFAIL)
        return
    except OSError as e:
        fail(f"delivery failed: {e}", EX_TEMPFAIL)
        return
    for r in results:
        if not r.ok:
            click.echo(f"mailbag: {r.recipient}: {r.code} {r.enhanced} {r.text}", err=True)
    if any(r.temporary for r in results):
        code = EX_TEMPFAIL
    elif all(r.ok for r in results):
        code = 0
    else:
        code = EX_NOUSER
    sys.exit(code)


def to_crlf(data: bytes) -> bytes:
    """Mailbox commands get LF line ends; the store keeps CRLF (IMAP needs it)."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
