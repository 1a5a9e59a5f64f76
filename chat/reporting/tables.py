"""The report's tables, made from the results, with headers in English and Russian."""

from __future__ import annotations

from chat.lab import results as lab_results
from chat.reporting.numbers import format_fact

WORDS = {  # English -> Russian, for every word a table prints
    "scenario": "сценарий", "target": "цель", "measured": "измерено", "goal": "требование", "met": "выполнено",
    "yes": "да", "no": "нет", "n/a": "нет данных", "server": "сервер", "ours": "наш", "textbook": "из учебника", "step": "шаг",
    "text": "текст", "ASCII": "ASCII", "Cyrillic": "кириллица", "messages": "сообщений", "delivered whole": "дошло целыми",
    "garbled lines": "испорченных строк", "users disconnected": "отключено пользователей", "users": "пользователей",
    "our deliveries/s": "наши доставки/с", "textbook whole messages/s": "из учебника: целых сообщений/с",
    "textbook lines passed on/s": "из учебника: строк передано/с", "our lost": "наши потери",
    "offered msg/s": "нагрузка, сообщ./с", "our p50": "наш p50", "our p99": "наш p99", "our p99.9": "наш p99.9",
    "textbook p50": "из учебника, p50", "textbook p99": "из учебника, p99", "textbook lost": "из учебника: потеряно",
    "deliveries/s": "доставок/с", "TCP_NODELAY": "TCP_NODELAY", "on": "вкл.", "off": "выкл.", "p50": "p50",
    "p99": "p99", "stalled user": "зависший пользователь", "baseline": "без него", "others' p99": "p99 остальных",
    "others lost": "остальные потеряли", "dropped as too slow": "отключён как медленный", "loss": "потери",
    "transport": "транспорт", "delivered": "доставлено", "not measured": "не измерено", "window": "окно",
    "lost": "потеряно", "server RSS": "RSS сервера", "threads": "потоки", "action": "действие", "times": "раз",
    "generator processes": "процессов генератора", "deliveries": "доставок",
    "others' p99 while it was connected": "p99 остальных, пока он был подключён",
    "others' p99, whole run": "p99 остальных, весь прогон", "connected for": "был подключён",
    "last delivery": "последняя доставка", "warm-up": "разогрев", "run": "прогон",
    "whole run": "весь прогон",
    "readers, µs per delivery": "потоки чтения, мкс на доставку", "flusher, µs per delivery": "поток сброса, мкс на доставку",
    "writers, µs per delivery": "потоки записи, мкс на доставку", "all, µs per delivery": "всего, мкс на доставку",
    "busiest second, CPU-s/s": "самая загруженная секунда, с ЦП/с", "check": "проверка",
}


def word(text: str, language: str) -> str:
    return WORDS.get(text, text) if language == "ru" else text


def _table(header: list[str], rows: list[list[str]], language: str) -> str:
    head = [word(cell, language) for cell in header]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(value, kind: str, language: str) -> str:
    return format_fact(value, kind, language)


def _runs(results: dict, name: str) -> list[dict]:
    return results.get(name, {}).get("runs", [])


def median_or_none(runs: list[dict], path: str, **match) -> float | None:
    """The median over the matching runs; None if none match or one lacks the value (older results)."""
    try:
        return lab_results.median_of(runs, path, **match)
    except (KeyError, TypeError):
        return None


def _server(run: dict, language: str) -> str:
    return word("ours" if run["server"] == "ours" else "textbook", language)


TARGET_NAMES = {  # English -> Russian, for every target chat.lab.bench judges (and the older names of stored results)
    "our deliveries/s at 50 users": "наши доставки/с при 50 пользователях",
    "our lost messages at 50 users": "наши потерянные сообщения при 50 пользователях",
    "ours / textbook deliveries/s at 50 users": "доставки/с, наш / из учебника, 50 пользователей",
    "our p99 latency (ms) at 50 users, 500 msg/s": "наша задержка p99 (мс) при 50 пользователях, 500 сообщ./с",
    "our lost messages, all loads": "наши потерянные сообщения, все нагрузки",
    "textbook p99 latency (ms) at 500 msg/s": "задержка p99 сервера из учебника (мс), 500 сообщ./с",
    "our lost messages, all sizes": "наши потерянные сообщения, все размеры",
    "our p99 latency (ms) at 500 users, 1 msg/s each": "наша задержка p99 (мс) при 500 пользователях по 1 сообщ./с",
    "users connected at once, every line delivered, however late (latency not judged)":
        "пользователей подключено одновременно, каждая строка доставлена, пусть и поздно (задержка не оценивается)",
    "our p99 (ms), TCP_NODELAY on": "наш p99 (мс), TCP_NODELAY вкл.",
    "our p99 (ms), TCP_NODELAY off": "наш p99 (мс), TCP_NODELAY выкл.",
    "p99 off / on": "p99 выкл. / вкл.",
    "lost by the others, with a stalled user": "потеряно остальными при зависшем пользователе",
    "others' p99 while the stalled user was connected / the same stretch without it":
        "p99 остальных, пока зависший был подключён / тот же отрезок без него",
    "others' p99 over the whole run with / without the stalled user":
        "p99 остальных за весь прогон с зависшим / без него",
    "others' p99 with / without the stalled user": "p99 остальных с зависшим / без него",
    "seconds the stalled user stayed connected (median)": "секунд, которые зависший оставался подключённым (медиана)",
    "runs in which the stalled user was dropped as too slow": "прогонов, в которых зависший отключён как медленный",
    "most bytes queued for one client / sendq bound": "наибольшая очередь одного клиента / предел sendq",
    "server RSS with a stalled user minus without (MiB)": "RSS сервера с зависшим минус без него (МиБ)",
    "textbook: lost by the others, with a stalled user": "из учебника: потеряно остальными при зависшем пользователе",
    "our lost or garbled messages": "наши потерянные или испорченные сообщения",
    "textbook, ASCII: messages delivered whole (share)": "из учебника, ASCII: доля сообщений, доставленных целыми",
    "textbook, Cyrillic: users disconnected by a split letter": "из учебника, кириллица: отключено пользователей из-за разрезанной буквы",
    "lines lost or garbled on the way": "строк потеряно или испорчено в пути",
    "messages lost by steady users": "сообщений потеряно постоянными пользователями",
    "unexpected errors in the server": "непредвиденных ошибок на сервере",
    "churn actions the server failed": "действий смены пользователей, на которых сервер ошибся",
    "churn actions done": "действий смены пользователей выполнено",
    "users dropped as too slow": "пользователей отключено как медленные",
    "server RSS growth after warm-up (MiB)": "рост RSS сервера после разогрева (МиБ)",
    "server threads at window ends, growth after warm-up": "рост числа потоков сервера в конце окон после разогрева",
}


def target_name(name: str, language: str) -> str:
    return TARGET_NAMES.get(name, name) if language == "ru" else name


def _shown(value, language: str) -> str:
    """A target's value or limit: integers as integers, other numbers with as few decimals as they need."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if float(value).is_integer():
        return _fmt(value, "int", language)
    if abs(value) >= 100:
        return _fmt(value, "int", language)
    return _fmt(value, "float1" if abs(value) >= 10 or round(value, 1) == round(value, 2) else "float2", language)


def targets(results: dict, language: str) -> str:
    """Every judged target (``info`` ones are quoted in the text instead)."""
    rows = []
    for name, result in results.items():
        for target in result.get("targets", []):
            if target["met"] is None:
                continue
            goal = f"{target['relation']} {_shown(target['limit'], language)}"
            rows.append([f"`{name}`", target_name(target["name"], language), _shown(target["value"], language), goal,
                         word("yes" if target["met"] else "no", language)])
    return _table(["scenario", "target", "measured", "goal", "met"], rows, language)


def framing(results: dict, language: str) -> str:
    rows = [[_server(run, language), word("ASCII" if run["alphabet"] == "ascii" else "Cyrillic", language),
             _fmt(run["expected"], "int", language), _fmt(run["delivered"] / run["expected"], "pct", language),
             _fmt(run["garbled"], "int", language), f"{run['receivers_closed']} / {run['users'] - run['stalled_users']}"]
            for run in _runs(results, "framing")]
    return _table(["server", "text", "deliveries", "delivered whole", "garbled lines", "users disconnected"], rows, language)


def capacity(results: dict, language: str) -> str:
    runs = _runs(results, "capacity")
    rows = []
    for users in sorted({run["users"] for run in runs}):
        rows.append([str(users),
                     _fmt(lab_results.median_of(runs, "deliveries_per_s", server="ours", users=users), "int", language),
                     _fmt(lab_results.median_of(runs, "deliveries_per_s", server="naive", users=users), "int", language),
                     _fmt(lab_results.median_passed_on_per_s(runs, server="naive", users=users), "int", language),
                     _fmt(lab_results.total_of(runs, "lost", server="ours", users=users), "int", language)])
    return _table(["users", "our deliveries/s", "textbook whole messages/s", "textbook lines passed on/s", "our lost"],
                  rows, language)


def latency(results: dict, language: str) -> str:
    runs = _runs(results, "latency")
    rows = []
    for rate in sorted({run["offered_per_s"] for run in runs}):
        m = lambda server, path: lab_results.median_of(runs, path, server=server, offered_per_s=rate)
        rows.append([_fmt(rate, "int", language), _fmt(m("ours", "latency_ms.p50"), "ms", language),
                     _fmt(m("ours", "latency_ms.p99"), "ms", language), _fmt(m("ours", "latency_ms.p99.9"), "ms", language),
                     _fmt(m("naive", "latency_ms.p50"), "ms", language), _fmt(m("naive", "latency_ms.p99"), "ms", language),
                     _fmt(lab_results.total_of(runs, "lost", server="naive", offered_per_s=rate), "int", language)])
    return _table(["offered msg/s", "our p50", "our p99", "our p99.9", "textbook p50", "textbook p99", "textbook lost"],
                  rows, language)


def scaling(results: dict, language: str) -> str:
    runs = _runs(results, "scaling")
    rows = []
    for users in sorted({run["users"] for run in runs}):
        m = lambda server, path: lab_results.median_of(runs, path, server=server, users=users)
        rows.append([str(users), _fmt(m("ours", "deliveries_per_s"), "int", language),
                     _fmt(m("ours", "latency_ms.p50"), "ms", language), _fmt(m("ours", "latency_ms.p99"), "ms", language),
                     _fmt(m("naive", "latency_ms.p99"), "ms", language),
                     _fmt(lab_results.total_of(runs, "lost", server="ours", users=users), "int", language),
                     _fmt(lab_results.total_of(runs, "lost", server="naive", users=users), "int", language)])
    return _table(["users", "deliveries/s", "our p50", "our p99", "textbook p99", "our lost", "textbook lost"], rows, language)


def per_delivery_us(runs: list[dict], role: str, users: int) -> float | None:
    """CPU time a kind of our server's threads spent per line delivered, over the runs at ``users`` (µs).

    From the start of sending to a moment after the last delivery (see ``chat.lab.measure.ThreadCpuReadings``);
    None for runs without the reading.
    """
    measured = [run for run in lab_results.matching(runs, server="ours", users=users) if run.get("server_cpu_by_thread")]
    delivered = sum(run["delivered"] for run in measured)
    if not measured or not delivered:
        return None
    seconds = sum(run["server_cpu_by_thread"].get(role, {}).get("cpu_s", 0.0) for run in measured)
    return seconds / delivered * 1e6


def scaling_cpu(results: dict, language: str) -> str:
    runs = _runs(results, "scaling")
    rows = []
    for users in sorted({run["users"] for run in runs}):
        costs = [per_delivery_us(runs, role, users) for role in ("chat-reader", "chat-flusher", "chat-writer")]
        if costs[0] is None or lab_results.total_of(runs, "lost", server="ours", users=users):
            continue  # lines still queued at the end were paid for but not delivered: no cost per delivery
        rows.append([str(users), *(_fmt(cost, "float2", language) for cost in costs),
                     _fmt(sum(costs), "float2", language),
                     _fmt(median_or_none(runs, "server_cpu_peak", server="ours", users=users), "float2", language)])
    return _table(["users", "readers, µs per delivery", "flusher, µs per delivery", "writers, µs per delivery",
                   "all, µs per delivery", "busiest second, CPU-s/s"], rows, language)


def nagle(results: dict, language: str) -> str:
    rows = [[_server(run, language), word("on" if run["server_options"].get("nodelay") else "off", language),
             _fmt(run["latency_ms"]["p50"], "ms", language), _fmt(run["latency_ms"]["p99"], "ms", language)]
            for run in _runs(results, "nagle")]
    return _table(["server", "TCP_NODELAY", "p50", "p99"], rows, language)


def _connected_for(stalled_runs: list[dict], language: str) -> str:
    """How long the stalled user stayed connected (median): the whole run unless the server dropped it."""
    if not any(run["server_left"].get("too slow") for run in stalled_runs):
        return word("whole run", language)
    return _fmt(median_or_none(stalled_runs, "window_s"), "s", language)


def slow_consumer(results: dict, language: str) -> str:
    runs = _runs(results, "slow-consumer")
    rows = []
    for server in ("ours", "naive"):
        for stalled in (0, 1):
            chosen = lab_results.matching(runs, server=server, stalled_users=stalled)
            if not chosen:
                continue
            median = lambda path: median_or_none(chosen, path)
            dropped = sum(run["server_left"].get("too slow", 0) for run in chosen) if server == "ours" else None
            rows.append([_server(chosen[0], language), word("stalled user" if stalled else "baseline", language),
                         _connected_for(chosen, language) if stalled else "–",
                         _fmt(median("latency_window_ms.p99"), "ms", language),
                         _fmt(median("latency_ms.p99"), "ms", language),
                         f'{_fmt(lab_results.total_of(chosen, "lost"), "int", language)} '
                         f'({_fmt(lab_results.lost_share(chosen), "pct", language)})',
                         f"{dropped} / {len(chosen)}" if stalled and dropped is not None else "–",
                         _fmt(median("duration_s"), "s", language)])
    return _table(["server", "run", "connected for", "others' p99 while it was connected",
                   "others' p99, whole run", "others lost", "dropped as too slow", "last delivery"], rows, language)


def udp(results: dict, language: str) -> str:
    rows = []
    for run in _runs(results, "udp"):
        head = [_fmt(run["injected_loss"], "pct", language), run["transport"].upper()]
        if "not_measured" in run:
            rows.append(head + [word("not measured", language), "–", "–"])
            continue
        rows.append(head + [_fmt(run["delivered"] / run["expected"], "pct", language),
                            _fmt(run["latency_ms"]["p50"], "ms", language), _fmt(run["latency_ms"]["p99"], "ms", language)])
    return _table(["loss", "transport", "delivered", "p50", "p99"], rows, language)


def ceiling(results: dict, language: str) -> str:
    rows = [[str(run["users"]), str(run["generator_processes"]), _fmt(run["deliveries_per_s"], "int", language)]
            for run in _runs(results, "ceiling")]
    return _table(["users", "generator processes", "deliveries/s"], rows, language)


def soak_windows(results: dict, language: str) -> str:
    soak = results.get("soak", {}).get("soak", {})
    warm_up = soak.get("warm_up_windows", 0)
    rows = [[_fmt(w["t_s"], "s", language) + (f" ({word('warm-up', language)})" if index < warm_up else ""),
             _fmt(w["lost"], "int", language), _fmt(w["latency_ms"]["p50"], "ms", language),
             _fmt(w["latency_ms"]["p99"], "ms", language), _fmt(w["server_rss_bytes"], "mib", language),
             str(w["server_threads"])] for index, w in enumerate(soak.get("windows", []))]
    return _table(["window", "lost", "p50", "p99", "server RSS", "threads"], rows, language)


def soak_churn(results: dict, language: str) -> str:
    done = results.get("soak", {}).get("soak", {}).get("churn_done", {})
    rows = [[f"`{name}`", str(count)] for name, count in done.items()]
    return _table(["action", "times"], rows, language)


CHECK_TITLES_RU = {  # python -m chat check's titles, for the Russian report
    "register": "пользователи регистрируются", "broadcast": "сообщение доходит до остальных",
    "two-in-one": "два сообщения одним send", "long-message": "сообщение в 2000 байт",
    "cyrillic-bytes": "кириллица по одному байту", "join-leave": "видно вход и выход",
    "reset-mid-line": "сброс посреди строки", "invalid-utf8": "неверный UTF-8",
    "stalled-reader": "один пользователь перестал читать", "light-load": "лёгкая нагрузка: доставка",
    "latency": "лёгкая нагрузка: задержка", "churn": "пользователи приходят и уходят",
    "long-line-memory": "бесконечная строка: память", "threads-left": "потоки после ухода всех",
    "sigint": "Ctrl+C",
}


def scorecards(results: dict, language: str) -> str:
    """``python -m chat check``'s verdicts, side by side: our server, the textbook one, and the six steps (if graded)."""
    servers = results.get("scorecards", {}).get("servers", {})
    if not {"ours", "naive"} <= servers.keys():
        return word("not measured", language)
    graded = ["ours", "naive", *(name for name in servers if name.startswith("step "))]
    verdicts = {name: {check["id"]: check["verdict"] for check in servers[name]["checks"]} for name in graded}
    rows = [[CHECK_TITLES_RU.get(check["id"], check["title"]) if language == "ru" else check["title"],
             *(verdicts[name].get(check["id"], "–") for name in graded)] for check in servers["ours"]["checks"]]
    steps = [name.replace("step", word("step", language)) for name in graded[2:]]
    return _table(["check", "ours", "textbook", *steps], rows, language)


TABLES = {
    "targets": targets, "framing": framing, "capacity": capacity, "latency": latency, "scaling": scaling,
    "scaling-cpu": scaling_cpu, "nagle": nagle, "slow-consumer": slow_consumer, "udp": udp, "ceiling": ceiling,
    "soak-windows": soak_windows, "soak-churn": soak_churn, "scorecards": scorecards,
}
