/* cio: asyncio's model in C. Include this header to get the whole API. */
#ifndef CIO_H
#define CIO_H

#include "cio/core.h"
#include "cio/task.h"
#include "cio/sync.h"
#include "cio/io.h"
#include "cio/exec.h"
#include "cio/fs.h"
#include "cio/process.h"
#include "cio/pool.h"
#include "cio/dns.h"
#include "cio/tls.h"
#include "cio/http.h"
#include "cio/websocket.h"
#include "cio/redis.h"
#include "cio/pg.h"
#include "cio/xloop.h"

#endif
