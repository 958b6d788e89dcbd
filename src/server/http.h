/* The libmicrohttpd daemon of llmrt serve (http.c). */
#ifndef LLMRT_SERVER_HTTP_H
#define LLMRT_SERVER_HTTP_H

#include <sys/socket.h>

#include "server/server.h"

struct MHD_Daemon;
/* Starts listening on addr with one thread per connection, at most
 * connection_limit connections; NULL on failure. */
struct MHD_Daemon *srv_http_start(srv_server *s, const struct sockaddr *addr, unsigned connection_limit);

#endif
