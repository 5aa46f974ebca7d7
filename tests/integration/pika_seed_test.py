#!/usr/bin/python3
"""The seed's RPC flow with a client that is not ours: pika publishes the seed's
exact get_message request to inter_comm with a reply_to, and a worker built on
intercomm's framework answers with the seed-shaped reply.

usage: pika_seed_test.py SEED_WORKER_BINARY SEED_VECTORS_DIR   (INTERCOMM_TEST_AMQP set)
"""
import json
import os
import subprocess
import sys
import time
import urllib.parse

import pika

worker_binary, vectors = sys.argv[1], sys.argv[2]
url = os.environ.get("INTERCOMM_TEST_AMQP")
if not url:
    sys.exit("INTERCOMM_TEST_AMQP is not set: run through scripts/test.sh, which starts RabbitMQ")

worker_name = f"seed_interop_{os.getpid()}"
queue = f"rpc_queue_{worker_name}"


def vector(name):
    with open(os.path.join(vectors, name), "rb") as f:
        return f.read()


def call(channel, body, correlation_id):
    """Publishes body to inter_comm/get_message and waits for the reply on an exclusive queue."""
    reply_queue = channel.queue_declare(queue="", exclusive=True).method.queue
    channel.basic_publish(
        exchange="inter_comm",
        routing_key="get_message",
        body=body,
        properties=pika.BasicProperties(reply_to=reply_queue, correlation_id=correlation_id,
                                        content_type="application/json"),
        mandatory=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        method, properties, reply = channel.basic_get(reply_queue, auto_ack=True)
        if method is not None:
            assert properties.correlation_id == correlation_id, properties.correlation_id
            return json.loads(reply)
        time.sleep(0.02)
    raise AssertionError("no reply within 20 s")


worker = subprocess.Popen([worker_binary, url, worker_name], stdout=subprocess.PIPE, text=True)
failures = []
try:
    ready = worker.stdout.readline().strip()
    assert ready == "ready", f"worker did not start: {ready!r}"
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()

    request = vector("get_message_request.json")
    request_id = json.loads(request)["id"]

    # 1. The seed's exact request gets exactly the seed's success response.
    reply = call(channel, request, request_id)
    if reply != json.loads(vector("get_message_success.json")):
        failures.append(f"success reply differs: {reply}")

    # 2. The seed's `job` key works as `method`.
    aliased = json.loads(request)
    aliased["job"] = aliased.pop("method")
    reply = call(channel, json.dumps(aliased).encode(), request_id)
    if reply.get("result", {}).get("body") != "merhaba":
        failures.append(f"job alias reply: {reply}")

    # 3. A malformed message_id gets exactly the seed's failure response.
    bad = json.loads(request)
    bad["params"] = {"message_id": 42}
    reply = call(channel, json.dumps(bad).encode(), request_id)
    if reply != json.loads(vector("get_message_failure.json")):
        failures.append(f"failure reply differs: {reply}")

    channel.queue_delete(queue=queue)
    connection.close()
finally:
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        failures.append("worker did not stop on SIGTERM")

if worker.returncode not in (0, -9) and not failures:
    failures.append(f"worker exited with {worker.returncode}")
for failure in failures:
    print("FAIL:", failure)
print(f"{3 - len(failures) if len(failures) <= 3 else 0} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
