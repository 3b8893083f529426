// A WebSocket client (Node's built-in or the npm package ws) for
// the cio server: sends a text and a binary message, prints the echoes,
// then closes with 4000. usage: ws_client.js URL
// The global WebSocket (Node 22; Node 20 behind a flag), else the npm
// package ws (tests/http_peers/package.json; .ci/run installs it). Exit
// 77 (skip) when neither is there.
let WS = globalThis.WebSocket;
if (!WS) {
  try {
    WS = require("ws");
  } catch (e) {
    console.log("no WebSocket client: Node 22, or `npm install` in tests/http_peers");
    process.exit(77);
  }
}
const ws = new WS(process.argv[2]);
ws.binaryType = "arraybuffer";
const got = [];
ws.onopen = () => {
  ws.send("héllo wörld");
  ws.send(new Uint8Array([0, 1, 2, 255]));
  ws.send("x".repeat(70000));
};
ws.onmessage = (ev) => {
  if (typeof ev.data === "string")
    got.push(ev.data.length > 100 ? "text:" + ev.data.length : "text:" + ev.data);
  else
    got.push("bin:" + Array.from(new Uint8Array(ev.data)).join(","));
  if (got.length === 3) ws.close(4000, "bye");
};
ws.onclose = (ev) => {
  console.log(got.join("|"));
  console.log("close " + ev.code + " " + ev.reason);
};
ws.onerror = (e) => { console.log("error " + e.message); };
