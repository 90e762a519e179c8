"""``pushmail watch``: the long-running process that ties the pieces together.

One event loop holds every account's watchers, the single heartbeat, the hook queue and
the network monitor. Signals: SIGTERM/SIGINT stop (queued hooks still run, without the
debounce wait); SIGHUP reloads the config — rules, VIPs, quiet hours, mute and hooks at
once, and accounts whose settings changed are reconnected (the others keep their
connections); SIGUSR1 writes a ``stats`` event with the counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

from pushmail.client.connection import Counters
from pushmail.client.heartbeat import Heartbeat
from pushmail.client.hooks import EventLog, HookRunner
from pushmail.client.netwatch import NetworkMonitor
from pushmail.client.pipeline import Pipeline
from pushmail.client.settings import Account, WatchConfig, WatchConfigError, load_watch_config
from pushmail.client.state import WatchState
from pushmail.client.watcher import AccountWatcher

__all__ = ["EX_NOPERM", "WatchDaemon", "state_path"]

EX_NOPERM = 77  # every account's login was refused
_HOOK_DRAIN = 60.0  # seconds to let queued hooks finish at shutdown


def state_path(config: WatchConfig) -> Path:
    return config.state_dir / "state.sqlite3"


class WatchDaemon:
    def __init__(self, config_path: Path, config: WatchConfig) -> None:
        self.config_path = config_path
        self.config = config
        self.counters = Counters()
        self.stop = asyncio.Event()
        self._tasks: dict[str, tuple[Account, AccountWatcher, asyncio.Task[None]]] = {}

    async def run(self) -> int:
        config = self.config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        state = WatchState(state_path(config))
        log = EventLog(config.log)
        hooks = HookRunner(log, config.hooks, config.debounce)
        self.pipeline = Pipeline(config, state, log, hooks, self.counters)
        self.heartbeat = Heartbeat(config.heartbeat_slack)
        monitor = NetworkMonitor(self._network_changed)
        beat_task = asyncio.create_task(self.heartbeat.run())
        hook_task = asyncio.create_task(hooks.run())
        self._install_signals()
        log.write("started", accounts=[a.name for a in config.accounts], netlink=monitor.start())
        for account in config.accounts:
            self._start(account)
        try:
            await self._wait()
        finally:
            monitor.stop()
            await self._stop_all()
            beat_task.cancel()
            await hooks.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_HOOK_DRAIN):
                    await hook_task
            hook_task.cancel()
            log.write("stopped", **self.counters.as_dict())
            state.close()
            log.close()
        failed = [w.account.name for _, w, _ in self._tasks.values() if w.auth_failed]
        return EX_NOPERM if failed and len(failed) == len(self._tasks) else 0

    async def _wait(self) -> None:
        """Until a stop signal, or until every account has given up (bad passwords)."""
        while not self.stop.is_set():
            running = [t for _, _, t in self._tasks.values() if not t.done()]
            if not running:
                return
            stop = asyncio.create_task(self.stop.wait())
            await asyncio.wait([stop, *running], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()

    def _start(self, account: Account) -> None:
        watcher = AccountWatcher(account, self.pipeline, self.heartbeat, self.counters)
        self._tasks[account.name] = (account, watcher, asyncio.create_task(watcher.run()))

    async def _stop_all(self) -> None:
        tasks = [t for _, _, t in self._tasks.values()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop.set)
        loop.add_signal_handler(signal.SIGINT, self.stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        loop.add_signal_handler(
            signal.SIGUSR1, lambda: self.pipeline.log.write("stats", **self.counters.as_dict())
        )

    def _network_changed(self) -> None:
        self.pipeline.log.write("network_changed")
        for _, watcher, _ in self._tasks.values():
            watcher.network_changed.set()
        self.heartbeat.probe_all()

    async def reload(self) -> None:
        log = self.pipeline.log
        try:
            new = await asyncio.to_thread(load_watch_config, self.config_path)
        except WatchConfigError as e:
            log.write("reload_failed", error=str(e))
            return
        if new.state_dir != self.config.state_dir or new.log != self.config.log:
            log.write("reload_failed", error="state_dir and log need a restart")
            return
        self.config = new
        self.pipeline.config = new
        self.pipeline.hooks.configure(new.hooks, new.debounce)
        self.heartbeat.slack = new.heartbeat_slack
        wanted = {a.name: a for a in new.accounts}
        for name, (account, _, task) in list(self._tasks.items()):
            if wanted.get(name) != account:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                del self._tasks[name]
        for name, account in wanted.items():
            if name not in self._tasks:
                self._start(account)
        log.write("reloaded", accounts=sorted(wanted))
