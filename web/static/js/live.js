// One live connection to /api/ws/status (the session cookie authenticates it), reconnecting with
// back-off. Messages are {"type", "id", "ts", "cursor"?, "data"}; handlers are called by type.
// Falls back to Server-Sent Events (named events) when WebSockets are refused by a proxy.

export class Live {
  constructor(onMessage, onState) {
    this.onMessage = onMessage;
    this.onState = onState;
    this.ws = null;
    this.es = null;
    this.backoff = 500;
    this.wsFailures = 0;
    this.stopped = false;
    this.received = 0;
  }

  start() {
    this.stopped = false;
    if (this.wsFailures >= 3 && window.EventSource) this._sse();
    else this._ws();
  }

  restart() { this.stop(); this.wsFailures = 0; this.start(); }

  stop() {
    this.stopped = true;
    if (this.ws) { this.ws.onclose = null; this.ws.close(); this.ws = null; }
    if (this.es) { this.es.close(); this.es = null; }
    this.onState("off");
  }

  _handle(raw) {
    let msg;
    try { msg = JSON.parse(raw); } catch { return; }
    this.received++;
    this.onMessage(msg);
  }

  _ws() {
    this.onState("wait");
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/api/ws/status`);
    this.ws = ws;
    let opened = false;
    ws.onopen = () => { opened = true; this.backoff = 500; this.wsFailures = 0; this.onState("on"); };
    ws.onmessage = (e) => this._handle(e.data);
    ws.onclose = () => {
      this.ws = null;
      if (!opened) this.wsFailures++;
      this.onState("off");
      if (!this.stopped) this._retry();
    };
  }

  _sse() {
    this.onState("wait");
    const es = new EventSource("/api/sse/status", { withCredentials: true });
    this.es = es;
    es.onopen = () => this.onState("on");
    es.onerror = () => this.onState(es.readyState === EventSource.CLOSED ? "off" : "wait");
    const handler = (e) => this._handle(e.data);
    for (const name of ["status_update", "metrics_update", "ese_update", "alert_update", "message"]) {
      es.addEventListener(name, handler);
    }
  }

  _retry() {
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, 10000);
    setTimeout(() => { if (!this.stopped) this.start(); }, wait);
  }
}
