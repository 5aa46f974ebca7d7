#!/usr/bin/env python3
"""Webhook receivers that hang, for bench/run_tarpit_bench.sh.

  tarpit.py serve STATE_DIR      listen on 127.0.0.1 (port in STATE_DIR/port), accept
                                 every connection and never answer; the number of
                                 connections accepted so far in STATE_DIR/accepted
  tarpit.py load PORT SECRET URL USERS HOOKS
                                 USERS users subscribe HOOKS webhooks each to URL,
                                 then each gets one message: USERS x HOOKS attempts
"""
import asyncio, base64, hashlib, hmac, json, os, sys, time, urllib.request


def serve(state):
    accepted = 0
    held = []

    async def hold(reader, writer):
        nonlocal accepted
        accepted += 1
        held.append(writer)
        with open(os.path.join(state, "accepted.tmp"), "w") as f:
            f.write(str(accepted))
        os.replace(os.path.join(state, "accepted.tmp"), os.path.join(state, "accepted"))
        while await reader.read(4096):
            pass

    async def main():
        server = await asyncio.start_server(hold, "127.0.0.1", 0, backlog=4096)
        with open(os.path.join(state, "port"), "w") as f:
            f.write(str(server.sockets[0].getsockname()[1]))
        await server.serve_forever()

    asyncio.run(main())


def token(secret, user):
    def b64(raw):
        return base64.urlsafe_b64encode(raw).rstrip(b"=")
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": user, "exp": int(time.time()) + 3600}).encode())
    signature = b64(hmac.new(secret.encode(), head + b"." + body, hashlib.sha256).digest())
    return (head + b"." + body + b"." + signature).decode()


def post(port, path, user, secret, payload):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(payload).encode(), method="POST",
        headers={"Authorization": "Bearer " + token(secret, user), "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def load(port, secret, url, users, hooks):
    run = str(int(time.time() * 1000))
    for u in range(users):
        user = f"tarpitted_{run}_{u}"
        for h in range(hooks):
            post(port, f"/v1/users/{user}/subscriptions", user, secret, {"webhook": {"url": f"{url}/{u}/{h}"}})
    for u in range(users):
        post(port, "/v1/messages", f"bench_sender_{run}", secret,
             {"receiver": f"tarpitted_{run}_{u}", "body": "to a webhook that never answers"})


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        load(int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
