"""Container health probe: exit 0 when GET http://127.0.0.1:<port><path> answers 2xx, else 1.

Standard library only (the images carry no curl). The port defaults to $METRICS_PORT, then 9090,
so one HEALTHCHECK line fits every connector image even when the metrics port is moved.

    usage: danube-healthcheck [PATH] [PORT]     (default: /health $METRICS_PORT|9090)
"""

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else "/health"
    port = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("METRICS_PORT", "9090")
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 0 if 200 <= response.status < 300 else 1
    except (urllib.error.URLError, OSError) as exc:
        sys.stderr.write(f"healthcheck {url}: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
