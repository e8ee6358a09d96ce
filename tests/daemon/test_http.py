#!/usr/bin/env python3
"""dynmemd's HTTP interface ([host] http): Prometheus metrics checked by the
real parser (python3-prometheus-client), the JSON API against the CLI's JSON,
the page and its chart library, status codes for bad requests, loopback
only unless allowed, and a flood of requests that must not stall the
balancing cycle (its lateness is read from dynmem status --json)."""
import concurrent.futures
import http.client
import json
import os
import signal
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import (Daemon, Tap, check, dynamic_vm, main, running, sim_host,  # noqa: E402
                        static_vm, wait_for)


try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    # Debian's python3-prometheus-client, when python3 is not Debian's own
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:  # the test says so instead of passing
        text_string_to_metric_families = None

tap = Tap()

CONFIG = (sim_host("6G", "http = 127.0.0.1:0")
          + dynamic_vm("web1", "rise.csv")
          + dynamic_vm("web.2-b", "small.csv", maximum="2G")
          + static_vm("spare", "1G", "small.csv"))

DYGRAPHS = "/usr/share/javascript/dygraphs/dygraph.min.js"


def endpoint(d):
    url = d.json("status")["http_url"]
    check(url and url.startswith("http://127.0.0.1:"), "status gives the URL", url)
    host, port = url[len("http://"):].rstrip("/").split(":")
    return host, int(port)


def request(d, path, method="GET", body=None, headers=None):
    host, port = endpoint(d)
    c = http.client.HTTPConnection(host, port, timeout=60)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def get_json(d, path):
    status, headers, body = request(d, path)
    check(status == 200, f"GET {path}", status, body)
    check(headers.get("Content-Type") == "application/json", "JSON content type", headers)
    return json.loads(body)


def running_vms(d):
    return wait_for(lambda: all(v["state"] == "running" for n, v in d.vms().items()
                                if n != "spare"), "the VMs to run")


@tap.case
def metrics_parse_with_the_prometheus_client(bins):
    check(text_string_to_metric_families, "python3-prometheus-client is installed")
    with running(bins, CONFIG) as d:
        running_vms(d)
        status, headers, body = request(d, "/metrics")
        check(status == 200, "GET /metrics", status)
        check(headers["Content-Type"].startswith("text/plain; version=0.0.4"),
              "the text format's content type", headers)
        text = body.decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        for name in ("dynmem_balancer_available_memory_bytes",
                     "dynmem_balancer_available_memory_for_balancing_bytes",
                     "dynmem_balancer_average_pressure_ratio",
                     "dynmem_balancer_system_current_pressure_ratio",
                     "dynmem_vm_physical_memory_bytes", "dynmem_vm_current_pressure_ratio",
                     "dynmem_vm_guest_visible_physical_memory_bytes",
                     "dynmem_vm_guest_available_memory_bytes", "dynmem_vm_lent_memory_bytes"):
            check(name in families and families[name].type == "gauge", f"gauge {name}",
                  sorted(families))
        for name in ("dynmem_balancer_added_memory_bytes", "dynmem_balancer_memory_add_operations",
                     "dynmem_vm_removed_memory_bytes", "dynmem_vm_memory_remove_operations"):
            f = families.get(name)
            check(f and f.type == "counter", f"counter {name}", sorted(families))
            check(all(s.name == name + "_total" for s in f.samples), "counters end in _total",
                  f.samples)
        for f in families.values():
            check(f.documentation, f"{f.name} has HELP")
        phys = {s.labels["vm"]: s.value
                for s in families["dynmem_vm_physical_memory_bytes"].samples}
        check(set(phys) == {"web1", "web.2-b", "spare"} and phys["spare"] == 0,
              "one series per VM, labelled vm", phys)
        check(not any(s.labels.get("vm") == "spare"
                      for s in families["dynmem_vm_current_pressure_ratio"].samples),
              "no pressure series for a VM that is off")
        ratio = [s.value for s in families["dynmem_vm_current_pressure_ratio"].samples]
        check(all(0 < v < 5 for v in ratio), "pressure as a ratio, not percent", ratio)
        state = {(s.labels["vm"], s.labels["state"]): s.value
                 for s in families["dynmem_vm_state"].samples}
        check(state[("spare", "off")] == 1 and state[("spare", "running")] == 0,
              "dynmem_vm_state", state)
        for line in text.splitlines():
            check(line.startswith("#") or "{" in line or len(line.split()) == 2,
                  "sample lines are NAME VALUE", line)


@tap.case
def the_api_gives_the_clis_json(bins):
    with running(bins, CONFIG) as d:
        running_vms(d)
        vms = get_json(d, "/api/v1/vms")
        cli = d.json("list")
        check([v["name"] for v in vms] == [v["name"] for v in cli], "the same VMs", vms, cli)
        check([sorted(v) for v in vms] == [sorted(v) for v in cli], "the same members")
        check(all(v["lent_bytes"] == 0 for v in vms), "lent_bytes: nothing lent here", vms)
        counters = get_json(d, "/api/v1/counters")
        cli = d.json("counters")
        check(sorted(counters) == sorted(cli) and list(counters["balancer"]) ==
              list(cli["balancer"]) and sorted(counters["vms"]) == sorted(cli["vms"]),
              "counters: the same shape", counters, cli)
        one = get_json(d, f"/api/v1/vms/{vms[0]['name']}")
        shown = d.json("show", vms[0]["name"])
        check(sorted(one) == sorted(shown) and one["name"] == shown["name"],
              "/api/v1/vms/NAME is dynmem show NAME", one, shown)
        check(one["backend"]["name"] == "sim" and sorted(one["backend"]) == sorted(shown["backend"]),
              "with what the backend describes", one)
        host = get_json(d, "/api/v1/status")
        check(sorted(host) == sorted(d.json("status")), "status: the same members", host)
        ev = get_json(d, "/api/v1/events")
        check(sorted(ev) == ["dropped", "events", "more", "next"] and ev["events"],
              "events", ev)
        newest = get_json(d, "/api/v1/events?last=2")
        check([e["seq"] for e in newest["events"]] == [newest["next"] - 1, newest["next"]]
              and newest["dropped"] == 0, "?last= gives the newest", newest)
        later = get_json(d, f"/api/v1/events?since={ev['next']}")
        check(all(e["seq"] > ev["next"] for e in later["events"]), "?since= skips the seen",
              later)
        _, headers, _ = request(d, "/api/v1/vms")
        check(headers.get("Cache-Control") == "no-store", "live data is not cached", headers)


@tap.case
def the_page_and_its_chart_library(bins):
    with running(bins, CONFIG) as d:
        status, headers, body = request(d, "/")
        check(status == 200 and headers["Content-Type"].startswith("text/html"), "GET /",
              status, headers)
        check(b'src="/app.js"' in body and b"/lib/dygraph.min.js" in body, "the page", body)
        check("default-src 'self'" in headers.get("Content-Security-Policy", ""),
              "a content security policy", headers)
        for path, kind in (("/app.js", "text/javascript"), ("/style.css", "text/css"),
                           ("/index.html", "text/html")):
            status, headers, body = request(d, path)
            check(status == 200 and headers["Content-Type"].startswith(kind) and body,
                  f"GET {path}", status, headers)
        status, headers, body = request(d, "/lib/dygraph.min.js")
        if os.path.exists(DYGRAPHS):
            with open(DYGRAPHS, "rb") as f:
                check(status == 200 and body == f.read(), "Debian's dygraphs, served as is",
                      status)
        else:
            check(status == 404, "no library installed: 404", status)


@tap.case
def bad_requests_get_the_right_status(bins):
    with running(bins, CONFIG) as d:
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            status, headers, _ = request(d, "/metrics", method=method, body=b"x=1")
            check(status == 405 and headers.get("Allow") == "GET, HEAD", f"{method}: 405",
                  status, headers)
        for path in ("/nope", "/api/v1", "/api/v1/vms/nosuchvm", "/api/v1/vms/", "/api/v1/vms/-x",
                     "/api/v1/vms/web1/", "/api/v1/vms/web1/x", "/metrics/", "/../etc/passwd",
                     "/lib/", "/lib/dygraph.js", "/index.htm"):
            status, _, _ = request(d, path)
            check(status == 404, f"GET {path}: 404", status)
        for q in ("since=abc", "since=-1", "since=1e3", "since=99999999999999999999999",
                  "since=", "last=0", "last=257", "last=x"):
            status, _, _ = request(d, "/api/v1/events?" + q)
            check(status == 400, f"{q!r}: 400", status)
        status, headers, body = request(d, "/metrics", method="HEAD")
        check(status == 200 and body == b"", "HEAD: headers only", status, body)
        for extra in ({}, {"Transfer-Encoding": "chunked"}):
            status, _, body = request(d, "/api/v1/status", body=b"x" * 10, headers=extra)
            check(status == 400, "a GET with a body: 400", extra, status, body)
        status, _, _ = request(d, "/api/v1/status", headers={"Content-Length": "0"})
        check(status == 200, "a GET with Content-Length: 0 is no GET with a body", status)
        # a raw request the parser must refuse, and garbage
        host, port = endpoint(d)
        for raw in (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n",
                    b"\x16\x03\x01\x00\x00garbage\r\n\r\n",
                    b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"):
            with socket.create_connection((host, port), timeout=60) as s:
                try:
                    s.sendall(raw)
                    answer = s.recv(200)
                except ConnectionResetError:
                    answer = b""
            check(answer == b"" or answer.startswith(b"HTTP/1.1 4"), "a 4xx or a close",
                  answer)
        check(get_json(d, "/api/v1/status")["vms"] == 3, "still serving")


def flood_one(host, port, i):
    paths = ["/metrics", "/api/v1/vms", "/api/v1/counters", "/", "/nope", "/api/v1/events"]
    path = paths[i % len(paths)]
    method = "POST" if i % 17 == 0 else "GET"
    try:
        c = http.client.HTTPConnection(host, port, timeout=60)
        c.request(method, path)
        r = c.getresponse()
        r.read()
        c.close()
        return r.status
    except (ConnectionError, http.client.HTTPException, socket.timeout, OSError):
        return "refused"


def lateness_between(before, after):
    """Percentiles of the lateness histogram's difference: the cycles in between."""
    b = {u: n for u, n in before["cycle_lateness_histogram"]}
    diff = sorted((u, n - b.get(u, 0)) for u, n in after["cycle_lateness_histogram"]
                  if n - b.get(u, 0) > 0)
    total = sum(n for _, n in diff)

    def pct(p):
        seen = 0
        for u, n in diff:
            seen += n
            if seen >= p * total:
                return u
        return 0.0
    return total, pct(0.5), pct(0.99), diff[-1][0] if diff else 0.0


@tap.case
def a_flood_of_requests_does_not_stall_the_cycle(bins):
    with running(bins, CONFIG) as d:
        running_vms(d)
        host, port = endpoint(d)
        before = d.json("status")
        start = time.monotonic()
        # 48 at a time from one address: more than it may hold open (16), so
        # some connections are refused; the loop ends when all 1000 have ended
        with concurrent.futures.ThreadPoolExecutor(max_workers=48) as pool:
            results = list(pool.map(lambda i: flood_one(host, port, i), range(1000)))
        took = time.monotonic() - start
        after = d.json("status")
        counts = {}
        for r in results:
            counts[r] = counts.get(r, 0) + 1
        check(len(results) == 1000, "every request ended")
        check(set(counts) <= {200, 404, 405, "refused"}, "only the expected answers", counts)
        check(counts.get(200, 0) > 0 and counts.get(404, 0) > 0, "requests are served", counts)
        cycles = after["cycles"] - before["cycles"]
        check(cycles > 0, "the balancer kept cycling during the flood", before, after)
        n, p50, p99, worst = lateness_between(before, after)
        print(f"# flood: 1000 requests, 48 at a time, in {took:.2f} s: {counts}", flush=True)
        print(f"# cycle lateness during the flood ({n} cycles, interval "
              f"{after['interval_ms']} ms): p50 {p50} ms, p99 {p99} ms, max {worst} ms; "
              f"cycles skipped {after['cycles_skipped'] - before['cycles_skipped']}; "
              f"before the flood: p50 {before['cycle_lateness_p50_ms']} ms, "
              f"p99 {before['cycle_lateness_p99_ms']} ms", flush=True)
        # and then a client within the limits is served as before
        for path in ("/metrics", "/api/v1/vms", "/api/v1/counters", "/") * 5:
            status, _, _ = request(d, path)
            check(status == 200, f"GET {path} after the flood", status)


@tap.case
def http_is_off_by_default_and_loopback_only(bins):
    off = CONFIG.replace("http = 127.0.0.1:0\n", "")
    with running(bins, off) as d:
        check(d.json("status")["http_url"] is None, "off without [host] http")
    # each refused at the line of the key at fault (the last of the case's lines)
    cases = [
        ("http = 0.0.0.0:9100\n", "[host] http: ", "http_allow_remote"),
        ("http = *:9100\n", "[host] http: ", "http_allow_remote"),
        ("http = 192.0.2.1:9100\n", "[host] http: ", "not a loopback address"),
        ("http = 127.0.0.1\n", "[host] http: ", "ADDRESS:PORT"),
        ("http = 127.0.0.1:99999\n", "[host] http: ", "ADDRESS:PORT"),
        ("http = example.com:80\n", "[host] http: ", "not an IP address"),
        ("http = 127.0.0.1:0\nweb_dir = relative/dir\n", "[host] web_dir ", "absolute path"),
        ("http = 127.0.0.1:0\nhttp_allow_remote = maybe\n", "http_allow_remote", "yes/no"),
    ]
    for line, what, why in cases:
        with Daemon(bins, CONFIG.replace("http = 127.0.0.1:0\n", line)) as d:
            p = d.check_config()
            at = f"{d.conf}:{d.conf_line(line.splitlines()[-1])}: {what}"
            check(p.returncode == 2 and why in p.stderr and at in p.stderr,
                  f"{line.strip()!r} is refused at its line: {why}", at, p.returncode, p.stderr)
    with Daemon(bins, CONFIG.replace("http = 127.0.0.1:0\n",
                                     "http = 0.0.0.0:9100\nhttp_allow_remote = yes\n")) as d:
        p = d.check_config()
        check(p.returncode == 0, "allowed when the operator says so", p.stderr)


@tap.case
def a_port_in_use_stops_the_start(bins):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with Daemon(bins, CONFIG.replace("http = 127.0.0.1:0", f"http = 127.0.0.1:{port}")) as d:
            d.start(expect_ready=False)
            rc = d.proc.wait(timeout=60)
            log = d.log()
            said = (f"{d.conf}:{d.conf_line(f'http = 127.0.0.1:{port}')}: [host] http = "
                    f"127.0.0.1:{port}: ")
            check(rc == 1 and "Address already in use" in log and said in log,
                  "exit 1, saying why at the line of http", said, rc, log)


@tap.case
def web_dir_replaces_the_built_in_page(bins):
    with tempfile.TemporaryDirectory() as web:
        os.chmod(web, 0o755)
        with open(os.path.join(web, "index.html"), "w") as f:
            f.write("<!DOCTYPE html><title>mine</title>\n")
        with running(bins, CONFIG.replace("http = 127.0.0.1:0\n",
                                          f"http = 127.0.0.1:0\nweb_dir = {web}\n")) as d:
            status, _, body = request(d, "/")
            check(status == 200 and b"<title>mine</title>" in body, "the page from web_dir",
                  body)
            status, _, body = request(d, "/app.js")
            check(status == 200 and b"api/v1/vms" in body, "the built-in app.js otherwise",
                  status)
            check("serving the built-in app.js" in d.log(), "the log says so", d.log())



@tap.case
def a_reload_keeps_the_interface_until_restart(bins):
    with running(bins, CONFIG) as d:
        url = d.json("status")["http_url"]
        d.write_config(CONFIG.replace("http = 127.0.0.1:0", "http = 127.0.0.1:1"))
        d.send(signal.SIGHUP)
        said = (f"{d.conf}:{d.conf_line('http = 127.0.0.1:1')}: warning: [host] http changes when "
                "dynmemd restarts")
        wait_for(lambda: said in d.log(), "the warning, at the line of http")
        check(d.json("status")["http_url"] == url, "the same URL", url)
        check(get_json(d, "/api/v1/status")["vms"] == 3, "still serving")

        # the page shows the configuration's warnings from here (built again each cycle):
        # this one among them
        def warnings():
            h = get_json(d, "/api/v1/status")
            return h["config_warnings"], h["config_warning_count"]

        wait_for(lambda: warnings() == ([said], 1), "the warning for the page")
        # the file back at the address in force: nothing waits
        d.write_config(CONFIG)
        d.send(signal.SIGHUP)
        wait_for(lambda: d.log_count("reloaded") == 2, "the second reload")
        wait_for(lambda: warnings() == ([], 0), "the warning gone from the page")


if __name__ == "__main__":
    main(tap)
