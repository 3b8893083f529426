// bench/http: Node's http module answering "Hello, World!".
// Usage: node http_node.js PORT
const http = require("http");
const port = Number(process.argv[2]);
http.createServer((req, res) => {
  res.writeHead(200, {"Content-Type": "text/plain", "Content-Length": 13});
  res.end("Hello, World!");
}).listen(port, "127.0.0.1");
