"""Bytes, radio wake-ups and energy per day, from the measured unit costs.

Strategies (one phone, one folder):

* ``idle``: an IMAP IDLE connection renewed by the client (DONE + IDLE) every ``k``
  minutes, ``k`` just below the NAT timeout (what ``pushmail watch`` learns, see
  ``pushmail.client.keepalive_learn``); each message costs the ``* n EXISTS`` and a
  header fetch on the held connection.
* ``idle_default_server``: IDLE as above, plus pushmail's default server keepalive
  (``* OK Still here`` after 10 quiet minutes), which a client renewing less often
  also receives.
* ``idle_notify``: the same connection with NOTIFY as ``pushmail watch`` uses it:
  INBOX kept selected with MessageNew FETCH items, so a message arrives with its
  headers and nothing is sent back (``notify_push``). Mail to the other folders costs
  ``* STATUS`` and a catch-up (EXAMINE with QRESYNC, fetch, UNSELECT), measured too.
  It watches any number of folders on this one connection, where ``idle_5_folders``
  needs five (one IDLE per folder).
* ``true_push``: no connection held by the mail app; per message the device channel
  delivers the alert (cited/assumed bytes, below) and the phone connects, logs in,
  selects with QRESYNC, fetches the headers and logs out (measured). The device
  channel's own keepalive is shared with every other app on the phone, so its
  marginal cost is zero (``true_push_own_channel`` counts it, for a phone without
  FCM/APNs).
* ``poll_k``: connect, log in, STATUS, log out every ``k`` minutes; a header fetch
  per message (not push: mail waits k/2 minutes on average).

Keepalives with Poisson mail: a renewal is needed only in a silence of ``k``; with
``m`` messages a day (rate λ = m/1440 per minute) the expected renewals per gap are
e^{-λk}/(1-e^{-λk}), so renewals per day → 1440/k as m → 0 and → 0 as m grows. A
wake-up is one radio promotion: each renewal, each message (announcement and fetch
together), each poll. Energy = wake-ups × (promotion + tail energy) + bytes × energy
per byte (LTE, Huang et al. 2012, cited in ``CITED``).
"""

from __future__ import annotations

import math
from typing import Any

NAT_TIMEOUTS_MIN = (2, 5, 15, 30)
SERVER_KEEPALIVE_MIN = 10.0  # pushmail's default imap_settings.idle_keepalive
MESSAGES = tuple(round(10 ** (e / 10), 3) for e in range(-10, 31))  # 0.1 … 1000 a day

CITED: dict[str, Any] = {
    "lte_power_model": {
        "source": "J. Huang, F. Qian, A. Gerber, Z. M. Mao, S. Sen, O. Spatscheck: A Close "
        "Examination of Performance and Power Characteristics of 4G LTE Networks, "
        "MobiSys 2012 (Table 3, 4G LTE power model)",
        "promotion_s": 0.2601,
        "promotion_w": 1.2107,
        "tail_s": 11.576,
        "tail_w": 1.060,
        "base_w": 1.288,
        "alpha_up_w_per_mbps": 0.43839,
        "alpha_down_w_per_mbps": 0.05197,
        "median_up_mbps": 6.0,
        "median_down_mbps": 13.0,
    },
    "5g_nsa": {
        "source": "Poster: Characterizing Performance and Power for mmWave 5G on Commodity "
        "Smartphones (Univ. of Minnesota): NSA 5G keeps LTE's control plane, one RRC state "
        "machine (https://experts.umn.edu/en/publications/"
        "poster-characterizing-performance-and-power-for-mmwave-5g-on-comm)",
        "note": "NSA 5G wakes through LTE's RRC, so the LTE tail model is a lower bound "
        "per wake-up; we found no published NR tail powers we could check, so no "
        "5G energy figure is given.",
    },
    "fcm_heartbeat": {
        "source": "https://android-arsenal.com/details/1/2216 (Play services heartbeat: "
        "every 15 min on Wi-Fi, 28 min on mobile networks)",
        "wifi_min": 15,
        "mobile_min": 28,
    },
    "fcm_payload_limit": {
        "source": "https://firebase.google.com/docs/cloud-messaging/concept-options "
        "(maximum payload 4096 bytes)",
        "bytes": 4096,
    },
    "apns": {
        "source": "Apple, Provider Communication with Apple Push Notification Service: "
        "each device keeps one accredited, encrypted, persistent IP connection to APNs",
        "note": "Apple publishes no heartbeat interval or per-notification overhead.",
    },
}

# Not published by FCM/APNs: assumed device-channel bytes per alert, clearly an
# assumption (see docs/cost.md): the encrypted payload as pushmail sends it (measured
# ``http_body``), one TLS record (22 bytes of header and tag), ~60 bytes of the
# channel's own framing, and two packets' TCP/IP headers (the data and its ACK).
ASSUMED_CHANNEL_FRAMING = 60
ASSUMED_HEARTBEAT_BYTES = 2 * (52 + 22 + 16)  # a ping and its answer, TLS, + ACK-free


def _b(d: Any) -> float:
    return float(d["bytes"])


def unit_costs(m: dict[str, Any]) -> dict[str, float]:
    """The unit costs the model uses (bytes), from ``push_cost.measure``'s output."""
    k, idle, notify, rec, poll = m["keepalive"], m["idle"], m["notify"], m["reconnect"], m["poll"]
    alert_body = float(m["alerts"]["warm"]["webpush"]["http_body"])
    u = {
        "keepalive_server_still_here": _b(k["server_still_here"]),
        "keepalive_client_done_idle": _b(k["client_done_idle"]),
        "keepalive_tcp_probe": _b(k["tcp_keepalive_probe"]),
        "keepalive_noop": _b(k["noop"]),
        "announce_idle_exists": _b(idle["idle_exists"]),
        "fetch_headers_idle": _b(idle["fetch_headers"]),
        "announce_notify_status": _b(notify["notify_status"]),
        "catch_up_notify": _b(notify["notify_catch_up"]),
        "announce_notify_push": _b(notify["notify_push"]),
        "reconnect_full": _b(rec["full_login"]),
        "reconnect_resumed": _b(rec["resumed_login"]),
        "poll_full": _b(poll["poll_full"]),
        "poll_resumed": _b(poll["poll_resumed"]),
        "push_fetch_full": _b(poll["push_fetch_full"]),
        "push_fetch_resumed": _b(poll["push_fetch_resumed"]),
        "alert_webpush_to_service_warm": float(m["alerts"]["warm"]["webpush"]["to_service"]),
        "alert_webpush_to_service_cold": float(m["alerts"]["cold"]["webpush"]["to_service"]),
        "alert_device_assumed": alert_body + 22 + ASSUMED_CHANNEL_FRAMING + 2 * 52,
    }
    for name in ("full_authenticate", "full_login_compress", "resumed_login_compress"):
        if name in rec:
            u[f"reconnect_{name}"] = _b(rec[name])
    for size, row in idle["fetch_whole"].items():
        u[f"fetch_whole_{size}"] = _b(row)
    return u


def renewals_per_day(msgs: float, k_min: float) -> float:
    if msgs <= 0:
        return 1440.0 / k_min
    q = math.exp(-msgs * k_min / 1440.0)
    return msgs * q / (1.0 - q)


def keepalive_interval(nat_min: float) -> float:
    """Where the learning client settles for a NAT timeout (simulated, minutes)."""
    from pushmail.client.keepalive_learn import settle_interval

    return settle_interval(nat_min * 60.0) / 60.0


def day(strategy: str, msgs: float, nat_min: float, u: dict[str, float]) -> dict[str, float]:
    """Bytes and wake-ups per day for one strategy."""
    if strategy == "idle_default_server":
        # pushmail's default server keepalive (``idle_keepalive`` 600 s) comes due
        # whenever the connection has been quiet that long, so a client renewing every
        # k > 10 min also gets floor(k / 10) ``Still here`` per renewal cycle (each its
        # own wake-up). Approximate: per renewal, not per gap between messages.
        one = day("idle", msgs, nat_min, u)
        k = keepalive_interval(nat_min)
        server = renewals_per_day(msgs, k) * math.floor(k / SERVER_KEEPALIVE_MIN - 1e-9)
        return {"bytes": one["bytes"] + server * u["keepalive_server_still_here"],
                "wakeups": one["wakeups"] + server}  # fmt: skip
    if strategy == "idle_5_folders":
        # One IDLE connection per folder: the heartbeat renews them in one wake-up,
        # but each pays its own bytes. Mail is assumed to land in one of them.
        one = day("idle", msgs, nat_min, u)
        extra = 4 * renewals_per_day(0, keepalive_interval(nat_min))
        return {"bytes": one["bytes"] + extra * u["keepalive_client_done_idle"],
                "wakeups": one["wakeups"]}  # fmt: skip
    if strategy in ("idle", "idle_notify"):
        k = keepalive_interval(nat_min)
        renew = renewals_per_day(msgs, k)
        per_msg = (
            u["announce_idle_exists"] + u["fetch_headers_idle"]
            if strategy == "idle"
            else u["announce_notify_push"]
        )
        return {
            "bytes": renew * u["keepalive_client_done_idle"] + msgs * per_msg,
            "wakeups": renew + msgs,
        }
    if strategy == "idle_rfc5382":
        # A NAT that keeps idle TCP mappings 2 h 4 min (RFC 5382 REQ-5) and a server
        # without autologout: a TCP keepalive probe every 2 hours is all it takes.
        renew = renewals_per_day(msgs, 120.0)
        per_msg = u["announce_idle_exists"] + u["fetch_headers_idle"]
        return {"bytes": renew * u["keepalive_tcp_probe"] + msgs * per_msg, "wakeups": renew + msgs}
    if strategy in ("true_push", "true_push_own_channel", "true_push_resumed"):
        fetch = u["push_fetch_resumed" if strategy == "true_push_resumed" else "push_fetch_full"]
        b = msgs * (u["alert_device_assumed"] + fetch)
        w = msgs
        if strategy == "true_push_own_channel":
            beats = renewals_per_day(msgs, min(CITED["fcm_heartbeat"]["mobile_min"], nat_min))
            b += beats * ASSUMED_HEARTBEAT_BYTES
            w += beats
        return {"bytes": b, "wakeups": w}
    if strategy.startswith("poll_"):
        k = float(strategy.removeprefix("poll_"))
        polls = 1440.0 / k
        return {"bytes": polls * u["poll_full"] + msgs * u["fetch_headers_idle"], "wakeups": polls}
    raise ValueError(strategy)


def energy_j(bytes_: float, wakeups: float, up_share: float = 0.35) -> float:
    """LTE energy per day: promotion + tail per wake-up, plus the transfer itself."""
    c = CITED["lte_power_model"]
    per_wake = c["promotion_w"] * c["promotion_s"] + c["tail_w"] * c["tail_s"]
    bits_up, bits_down = bytes_ * 8 * up_share, bytes_ * 8 * (1 - up_share)
    t_up = bits_up / (c["median_up_mbps"] * 1e6)
    t_down = bits_down / (c["median_down_mbps"] * 1e6)
    transfer = (c["alpha_up_w_per_mbps"] * c["median_up_mbps"] + c["base_w"]) * t_up + (
        c["alpha_down_w_per_mbps"] * c["median_down_mbps"] + c["base_w"]
    ) * t_down
    return wakeups * per_wake + transfer


def metric(strategy: str, msgs: float, nat_min: float, u: dict[str, float], key: str) -> float:
    d = day(strategy, msgs, nat_min, u)
    return energy_j(d["bytes"], d["wakeups"]) if key == "energy" else d[key]


def break_even(a: str, b: str, nat_min: float, u: dict[str, float], key: str = "bytes") -> float:
    """Messages a day above which ``a`` costs less than ``b`` (bisection on a log
    scale); inf if never within 1e5 a day, 0 if always."""

    def diff(m: float) -> float:
        return metric(a, m, nat_min, u, key) - metric(b, m, nat_min, u, key)

    lo, hi = 1e-3, 1e5
    if diff(lo) <= 0:
        return 0.0
    if diff(hi) > 0:
        return math.inf
    for _ in range(80):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if diff(mid) > 0 else (lo, mid)
    return round(hi, 2)


def break_even_table(u: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Per NAT timeout: messages a day above which IDLE (and IDLE + NOTIFY) use fewer
    bytes than true push; and the keepalive interval assumed."""
    out: dict[str, dict[str, Any]] = {}
    for t in NAT_TIMEOUTS_MIN:
        k = keepalive_interval(t)
        out[f"{t}min"] = {
            "keepalive_min": round(k, 2),
            "keepalive_bytes_per_day_by_method": {
                method: round(1440.0 / k * u[f"keepalive_{method}"])
                for method in ("client_done_idle", "server_still_here", "tcp_probe", "noop")
            },
            "idle_vs_true_push": _num(break_even("idle", "true_push", t, u)),
            "idle_notify_vs_true_push": _num(break_even("idle_notify", "true_push", t, u)),
            "idle_vs_true_push_own_channel": _num(
                break_even("idle", "true_push_own_channel", t, u)
            ),
            "idle_vs_true_push_resumed": _num(break_even("idle", "true_push_resumed", t, u)),
            "five_folders_idle_each_vs_true_push": _num(
                break_even("idle_5_folders", "true_push", t, u)
            ),
            "idle_default_server_keepalive_vs_true_push": _num(
                break_even("idle_default_server", "true_push", t, u)
            ),
            "wakeups_per_day_no_mail_default_server_keepalive": round(
                day("idle_default_server", 0, t, u)["wakeups"], 1
            ),
            "idle_vs_poll_15": _num(break_even("idle", "poll_15", t, u)),
            "energy_idle_vs_true_push": _num(break_even("idle", "true_push", t, u, "energy")),
            "energy_idle_vs_true_push_own_channel": _num(
                break_even("idle", "true_push_own_channel", t, u, "energy")
            ),
        }
    out["124min_rfc5382_no_autologout"] = {
        "keepalive_min": 120.0,
        "idle_vs_true_push": _num(break_even("idle_rfc5382", "true_push", 124, u)),
        "idle_vs_true_push_resumed": _num(break_even("idle_rfc5382", "true_push_resumed", 124, u)),
        "energy_idle_vs_true_push": _num(break_even("idle_rfc5382", "true_push", 124, u, "energy")),
    }
    return out


def _num(x: float) -> float | str:
    return "never" if math.isinf(x) else x


def learning_savings(u: dict[str, float]) -> dict[str, dict[str, float]]:
    """Renewal wake-ups a day with no mail: the learned interval against a fixed 5- and
    24-minute renewal. A fixed interval at or above the NAT timeout loses the
    connection at every renewal: it pays a failed DONE (wake-up) and a reconnect (a
    second wake-up after the response timeout), and mail waits until then."""
    out: dict[str, dict[str, float]] = {}
    for t in NAT_TIMEOUTS_MIN:
        learned = 1440.0 / keepalive_interval(t)
        row = {"learned": round(learned, 1)}
        for fixed in (5, 24):
            wakes = 1440.0 / fixed
            if fixed >= t:
                wakes *= 2  # broken: a failed probe, then a reconnect
            row[f"fixed_{fixed}min"] = round(wakes, 1)
            row[f"fixed_{fixed}min_connection_survives"] = float(fixed < t)
        out[f"{t}min"] = row
    return out


def examples(u: dict[str, float]) -> dict[str, dict[str, dict[str, float]]]:
    """KB, wake-ups and LTE joules per day at 1, 10 and 100 messages a day."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for t in NAT_TIMEOUTS_MIN:
        for m in (1, 10, 100):
            row: dict[str, dict[str, float]] = {}
            for s in ("idle", "idle_notify", "true_push", "true_push_resumed", "poll_15"):
                d = day(s, m, t, u)
                row[s] = {
                    "kb": round(d["bytes"] / 1000, 1),
                    "wakeups": round(d["wakeups"], 1),
                    "joules": round(energy_j(d["bytes"], d["wakeups"])),
                }
            out[f"{t}min_{m}msgs"] = row
    return out
