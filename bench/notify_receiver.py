# A webhook receiver for bench/notify.sh: answers 204 at once and appends,
# per notification, the milliseconds from the body's `time` to its arrival.
#   python3 bench/notify_receiver.py PORT OUTFILE
import datetime, json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

out = open(sys.argv[2], "a", buffering=1)

class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        now = datetime.datetime.now(datetime.timezone.utc)
        sent = datetime.datetime.fromisoformat(json.loads(body)["time"].replace("Z", "+00:00"))
        self.send_response(204)
        self.end_headers()
        out.write(f"{(now - sent).total_seconds() * 1000:.0f}\n")

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Hook).serve_forever()
