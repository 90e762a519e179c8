"""What happens when a message is announced: the event log, commands, webhooks and
desktop notifications.

Every event is one JSON line (to stdout or a log file) the moment it happens. The hooks
run from one queue, in order, after a *debounce*: the first message of a burst starts a
``debounce``-second window, and everything that arrives in it is handed over together.
The command and webhook hooks still run once per message (a script sees one message,
as JSON on stdin and as ``PUSHMAIL_*`` variables); the desktop notification is one per
burst ("5 new messages"), because fifty pop-ups for one mailing-list storm help nobody.

A hook that fails or overruns its ``timeout`` is logged and killed; it never stops the
watcher, and it is never retried (the promise is "at most once per message").
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from typing import TextIO

from pushmail.client.rules import Decision, MessageInfo
from pushmail.client.settings import Hook

__all__ = ["EventLog", "HookRunner", "hook_env"]


class EventLog:
    """One JSON object per line, flushed at once (a supervisor may be tailing it)."""

    def __init__(self, target: str) -> None:
        self._own = target not in ("-", "")
        self._out: TextIO = open(target, "a", encoding="utf-8") if self._own else sys.stdout  # noqa: SIM115

    def write(self, event: str, **fields: object) -> None:
        record = {"event": event, "time": round(time.time(), 3), **fields}
        self._out.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._out.flush()

    def close(self) -> None:
        if self._own:
            self._out.close()


def hook_env(info: MessageInfo, decision: Decision) -> dict[str, str]:
    """``PUSHMAIL_*`` variables for a command hook (values on one line each)."""
    env = {f"PUSHMAIL_{k.upper()}": _one_line(v) for k, v in info.as_json().items()}
    env["PUSHMAIL_VIP"] = "1" if decision.vip else "0"
    env["PUSHMAIL_REASON"] = decision.reason
    return env


def _one_line(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return " ".join(str(value).split())


class HookRunner:
    def __init__(self, log: EventLog, hooks: tuple[Hook, ...], debounce: float) -> None:
        self.log = log
        self.hooks = hooks
        self.debounce = debounce
        self._queue: asyncio.Queue[tuple[MessageInfo, Decision] | None] = asyncio.Queue()
        self._flush = asyncio.Event()

    def configure(self, hooks: tuple[Hook, ...], debounce: float) -> None:
        """After a reload; takes effect from the next burst."""
        self.hooks, self.debounce = hooks, debounce

    def submit(self, info: MessageInfo, decision: Decision) -> None:
        self._queue.put_nowait((info, decision))

    async def close(self) -> None:
        """Run what is queued now (no further debounce wait), then stop."""
        self._flush.set()
        self._queue.put_nowait(None)

    async def run(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            burst = [first]
            if not self._flush.is_set():
                try:
                    async with asyncio.timeout(self.debounce):
                        await self._flush.wait()
                except TimeoutError:
                    pass
            stop = False
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stop = True
                else:
                    burst.append(item)
            await self._run_burst(burst)
            if stop:
                return

    async def _run_burst(self, burst: list[tuple[MessageInfo, Decision]]) -> None:
        for hook in self.hooks:
            if hook.type == "desktop":
                await self._desktop(hook, [info for info, _ in burst])
                continue
            for info, decision in burst:
                if hook.type == "command":
                    await self._command(hook, info, decision)
                else:
                    await self._webhook(hook, info, decision)

    async def _command(self, hook: Hook, info: MessageInfo, decision: Decision) -> None:
        payload = json.dumps({**info.as_json(), "vip": decision.vip, "reason": decision.reason})
        try:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh", "-c", hook.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                env={**os.environ, **hook_env(info, decision)},
            )  # fmt: skip
        except OSError as e:
            self.log.write("hook_failed", hook="command", uid=info.uid, error=str(e))
            return
        try:
            async with asyncio.timeout(hook.timeout):
                await proc.communicate(payload.encode("utf-8"))
        except (BrokenPipeError, ConnectionResetError):
            await proc.wait()  # the command did not read its stdin: that is its business
        except TimeoutError:
            proc.kill()
            await proc.wait()
            self.log.write("hook_failed", hook="command", uid=info.uid, error="timeout")
            return
        if proc.returncode:
            self.log.write("hook_failed", hook="command", uid=info.uid, status=proc.returncode)

    async def _webhook(self, hook: Hook, info: MessageInfo, decision: Decision) -> None:
        body = json.dumps({**info.as_json(), "vip": decision.vip, "reason": decision.reason})
        headers = {"Content-Type": "application/json", "User-Agent": "pushmail-watch"}
        for line in hook.headers:
            name, _, value = line.partition(":")
            headers[name.strip()] = value.strip()
        req = urllib.request.Request(hook.url, body.encode("utf-8"), headers, method="POST")

        def post() -> int:
            with urllib.request.urlopen(req, timeout=hook.timeout) as resp:
                return int(resp.status)

        try:
            status = await asyncio.to_thread(post)
        except (OSError, urllib.error.URLError, ValueError) as e:
            self.log.write("hook_failed", hook="webhook", uid=info.uid, error=str(e))
            return
        if status >= 300:
            self.log.write("hook_failed", hook="webhook", uid=info.uid, status=status)

    async def _desktop(self, hook: Hook, infos: list[MessageInfo]) -> None:
        exe = shutil.which("notify-send")
        if exe is None:
            return
        if len(infos) == 1:
            title, text = f"Mail from {infos[0].from_}", infos[0].subject
        else:
            title = f"{len(infos)} new messages"
            text = "\n".join(f"{i.from_}: {i.subject}" for i in infos[:5])
        proc = await asyncio.create_subprocess_exec(
            exe, "--app-name=pushmail", title, text, stdout=asyncio.subprocess.DEVNULL
        )
        try:
            async with asyncio.timeout(hook.timeout):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
