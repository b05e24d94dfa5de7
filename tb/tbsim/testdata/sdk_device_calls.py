"""Makes the device calls of ThingsBoard's official Python SDK (tb-mqtt-client,
tb_device_mqtt.py) the way it makes them: paho-mqtt with MQTT 5, keepalive
120, the SDK's subscriptions in on_connect, getSessionLimits, telemetry as a
one-element array, attributes, an attribute request, a server-side RPC reply,
a client-side RPC, a claim, a firmware download in chunks, and provisioning
over MQTT 3.1.1. Prints one JSON line of results on stdout.

usage: sdk_device_calls.py HOST PORT TOKEN PROVISION_KEY PROVISION_SECRET
"""
import json
import sys
import threading

import paho.mqtt.client as mqtt

from sdkreplay import cond, connect_v5, on_message, wait, wait_prefix  # noqa: F401

host, port, token, pkey, psecret = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
results = {}


suback = {}


def on_subscribe(_c, _u, mid, granted, _p=None):
    with cond:
        suback[mid] = [g.value if hasattr(g, "value") else g for g in granted]
        cond.notify_all()


connected = threading.Event()


def on_connect(c, _u, _flags, rc, _props=None):
    results["connack"] = rc.value if hasattr(rc, "value") else rc
    # The SDK subscribes in on_connect, after every (re)connect.
    for topic in ("v1/devices/me/attributes", "v1/devices/me/attributes/response/+",
                  "v1/devices/me/rpc/request/+", "v1/devices/me/rpc/response/+"):
        c.subscribe(topic, qos=1)
    connected.set()


client = connect_v5(host, port, token, on_connect, on_subscribe, connected)


def publish(topic, payload, qos=1):
    info = client.publish(topic, payload, qos=qos)
    info.wait_for_publish(15)
    return info.rc


# getSessionLimits, as the SDK sends it right after connecting.
publish("v1/devices/me/rpc/request/1", json.dumps({"method": "getSessionLimits", "params": {"timeout": 5000}}))
results["sessionLimits"] = json.loads(wait("v1/devices/me/rpc/response/1"))

# Telemetry: the SDK wraps a flat dict into a one-element array, and sends a
# {ts, values} dict as a plain object.
results["telemetryRc"] = publish("v1/devices/me/telemetry", json.dumps([{"temperature": 21.5, "on": True}]))
publish("v1/devices/me/telemetry", json.dumps({"ts": 1700000000000, "values": {"temperature": 20}}))

# Client attributes.
publish("v1/devices/me/attributes", json.dumps({"serial": "SN-1", "fwVersion": "1.0"}))

# Attribute request with comma-separated keys.
publish("v1/devices/me/attributes/request/2", json.dumps({"clientKeys": "serial", "sharedKeys": "target"}))
results["attributes"] = json.loads(wait("v1/devices/me/attributes/response/2"))

# Server-side RPC: the Go side sends one once it reads this line.
print("READY_FOR_RPC", flush=True)
topic, body = wait_prefix("v1/devices/me/rpc/request/")
req = json.loads(body)
rpc_id = topic.rsplit("/", 1)[1]
results["serverRpc"] = {"id": rpc_id, "method": req["method"], "params": req.get("params")}
publish("v1/devices/me/rpc/response/" + rpc_id, json.dumps({"done": True, "echo": req.get("params")}))

# Client-side RPC.
publish("v1/devices/me/rpc/request/3", json.dumps({"method": "echo", "params": {"x": 1}}))
results["clientRpc"] = json.loads(wait("v1/devices/me/rpc/response/3"))

# Claiming.
results["claimRc"] = publish("v1/devices/me/claim", json.dumps({"secretKey": "sdk-secret", "durationMs": 60000}))

# Firmware: the SDK subscribes v2/fw/response/+ (refused by ThingsBoard,
# harmless), requests the fw attributes, then the chunks.
client.subscribe("v2/fw/response/+", qos=1)
publish("v1/devices/me/attributes/request/4", json.dumps(
    {"sharedKeys": "fw_checksum,fw_checksum_algorithm,fw_size,fw_title,fw_version"}))
fw = json.loads(wait("v1/devices/me/attributes/response/4"))["shared"]
size, chunk, data = int(fw["fw_size"]), 4096, b""
n = 0
while len(data) < size:
    publish("v2/fw/request/5/chunk/%d" % n, str(chunk))
    part = wait("v2/fw/response/5/chunk/%d" % n)
    if not part:
        break
    data += part
    n += 1
import hashlib
results["firmware"] = {"title": fw["fw_title"], "size": len(data), "chunks": n,
                       "sha256ok": hashlib.sha256(data).hexdigest() == fw["fw_checksum"]}
publish("v1/devices/me/telemetry", json.dumps([{"fw_state": "UPDATED", "current_fw_title": fw["fw_title"]}]))
client.loop_stop()
client.disconnect()

# Provisioning: the SDK's provision client uses MQTT 3.1.1 with user name
# "provision" and publishes the request at QoS 0.
prov = mqtt.Client(client_id="", protocol=mqtt.MQTTv311)
prov.username_pw_set("provision")
prov.on_message = on_message
prov_connected = threading.Event()
prov.on_connect = lambda c, u, f, rc: (c.subscribe("/provision/response"), prov_connected.set())
prov.connect(host, port, keepalive=60)
prov.loop_start()
if not prov_connected.wait(15):
    raise SystemExit("no provisioning CONNACK")
import time
time.sleep(0.2)
prov.publish("/provision/request", json.dumps({
    "deviceName": "sdk-provisioned", "provisionDeviceKey": pkey, "provisionDeviceSecret": psecret}), qos=0)
results["provision"] = json.loads(wait("/provision/response"))
prov.loop_stop()
prov.disconnect()

print("RESULT " + json.dumps(results), flush=True)
