// A minimal RFC 6455 echo server in plain Node (no packages) for the cio
// WebSocket client. Prints its port on stdout; echoes text and binary
// messages; answers a close with the same code; "close-me" makes it close
// with 4001. usage: ws_server.js
const http = require("http");
const crypto = require("crypto");

function frame(op, payload) {
  const n = payload.length;
  let head;
  if (n < 126) head = Buffer.from([0x80 | op, n]);
  else if (n < 65536) { head = Buffer.alloc(4); head[0] = 0x80 | op; head[1] = 126; head.writeUInt16BE(n, 2); }
  else { head = Buffer.alloc(10); head[0] = 0x80 | op; head[1] = 127; head.writeBigUInt64BE(BigInt(n), 2); }
  return Buffer.concat([head, payload]);
}

const server = http.createServer((req, res) => { res.writeHead(404); res.end(); });
server.on("upgrade", (req, sock) => {
  const key = req.headers["sec-websocket-key"];
  const acc = crypto.createHash("sha1")
    .update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
  sock.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
             "Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc + "\r\n\r\n");
  let buf = Buffer.alloc(0);
  let frags = [], fop = 0;
  sock.on("data", (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      if (buf.length < 2) return;
      const fin = buf[0] & 0x80, op = buf[0] & 15, masked = buf[1] & 0x80;
      let len = buf[1] & 127, off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      if (!masked) { sock.destroy(); return; }
      if (buf.length < off + 4 + len) return;
      const mask = buf.subarray(off, off + 4);
      const p = Buffer.from(buf.subarray(off + 4, off + 4 + len));
      for (let i = 0; i < len; i++) p[i] ^= mask[i & 3];
      buf = buf.subarray(off + 4 + len);
      if (op === 8) { sock.end(frame(8, p.subarray(0, 2))); return; }
      if (op === 9) { sock.write(frame(10, p)); continue; }
      if (op === 10) continue;
      if (op === 1 || op === 2) { fop = op; frags = []; }
      frags.push(p);
      if (!fin) continue;
      const msg = Buffer.concat(frags);
      if (fop === 1 && msg.toString() === "close-me") {
        const c = Buffer.alloc(2); c.writeUInt16BE(4001, 0);
        sock.write(frame(8, Buffer.concat([c, Buffer.from("server bye")])));
        continue;
      }
      if (fop === 1 && msg.toString() === "fragments") {
        // Answer in three fragments with a ping in between.
        sock.write(Buffer.concat([Buffer.from([0x01, 3]), Buffer.from("abc"),
          Buffer.from([0x89, 1]), Buffer.from("p"),
          Buffer.from([0x00, 3]), Buffer.from("def"),
          Buffer.from([0x80, 3]), Buffer.from("ghi")]));
        continue;
      }
      sock.write(frame(fop, msg));
    }
  });
  sock.on("error", () => {});
});
server.listen(0, "127.0.0.1", () => {
  console.log(server.address().port);
});
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
