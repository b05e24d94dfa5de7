"""Makes the gateway calls of ThingsBoard's official Python SDK (tb-mqtt-client,
tb_gateway_mqtt.py) the way it makes them: paho-mqtt with MQTT 5, keepalive
120, the device and gateway subscriptions in on_connect, getSessionLimits,
then gw_connect_device, gw_send_telemetry (a flat dict wrapped into a
one-element list; a {ts, values} dict), gw_send_attributes,
gw_request_client_attributes / gw_request_shared_attributes (always a "keys"
list), telemetry for a device never connected (implicit connect), a shared
attribute update, a server-side RPC answered with gw_send_rpc_reply,
gw_claim and gw_disconnect_device, all at QoS 1. Prints one JSON line of
results on stdout; READY_FOR_UPDATE and READY_FOR_RPC ask the Go side to act.

usage: sdk_gateway_calls.py HOST PORT GATEWAY_TOKEN
"""
import json
import sys
import threading

import paho.mqtt.client as mqtt

from sdkreplay import cond, connect_v5, on_message, wait, wait_prefix  # noqa: F401

host, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
results = {}


connected = threading.Event()
suback = []


def on_subscribe(_c, _u, _mid, granted, _p=None):
    with cond:
        suback.extend(g.value if hasattr(g, "value") else g for g in granted)
        cond.notify_all()


def on_connect(c, _u, _flags, rc, _props=None):
    results["connack"] = rc.value if hasattr(rc, "value") else rc
    # TBDeviceMqttClient._on_connect, then TBGatewayMqttClient._on_connect.
    for topic in ("v1/devices/me/attributes", "v1/devices/me/attributes/response/+",
                  "v1/devices/me/rpc/request/+", "v1/devices/me/rpc/response/+",
                  "v1/gateway/attributes", "v1/gateway/attributes/response", "v1/gateway/rpc"):
        c.subscribe(topic, qos=1)
    connected.set()


client = connect_v5(host, port, token, on_connect, on_subscribe, connected)
with cond:
    if not cond.wait_for(lambda: len(suback) == 7, 15):
        raise SystemExit("subscriptions not acknowledged")
    results["suback"] = suback


def publish(topic, data, qos=1):
    info = client.publish(topic, json.dumps(data), qos=qos)
    info.wait_for_publish(15)
    return info.rc


# getSessionLimits, as the SDK sends it right after connecting.
publish("v1/devices/me/rpc/request/1", {"method": "getSessionLimits", "params": {"timeout": 5000}})
results["sessionLimits"] = json.loads(wait("v1/devices/me/rpc/response/1"))

# gw_connect_device(device_name, device_type)
results["connectRc"] = publish("v1/gateway/connect", {"device": "Gw Dev A", "type": "thermostat"})

# gw_send_telemetry: a dict is wrapped into a list; a {ts, values} dict too.
results["telemetryRc"] = publish("v1/gateway/telemetry", {"Gw Dev A": [{"temperature": 21.5, "on": True}]})
publish("v1/gateway/telemetry", {"Gw Dev A": [{"ts": 1700000000000, "values": {"temperature": 20}}]})

# gw_send_attributes
publish("v1/gateway/attributes", {"Gw Dev A": {"serial": "SN-A", "fwVersion": "v1"}})

# gw_request_client_attributes / gw_request_shared_attributes: always "keys".
publish("v1/gateway/attributes/request", {"keys": ["serial"], "device": "Gw Dev A", "client": True, "id": 1})
results["clientAttr"] = json.loads(wait("v1/gateway/attributes/response"))
publish("v1/gateway/attributes/request", {"keys": ["target", "mode", "missing"], "device": "Gw Dev A",
                                          "client": False, "id": 2})
results["sharedAttr"] = json.loads(wait("v1/gateway/attributes/response"))

# A device the gateway never connected: implicit connect.
publish("v1/gateway/telemetry", {"Gw Dev B": [{"level": 3}]})

# Shared-attribute update for the implicitly connected device.
print("READY_FOR_UPDATE", flush=True)
results["update"] = json.loads(wait("v1/gateway/attributes"))

# Server-side RPC to Gw Dev A, answered with gw_send_rpc_reply.
print("READY_FOR_RPC", flush=True)
req = json.loads(wait("v1/gateway/rpc"))
results["serverRpc"] = req
results["rpcReplyRc"] = publish("v1/gateway/rpc", {"device": req["device"], "id": req["data"]["id"],
                                                   "data": {"done": True, "echo": req["data"].get("params")}})

# gw_claim(device_name, secret_key, duration)
results["claimRc"] = publish("v1/gateway/claim", {"Gw Dev A": {"secretKey": "sdk-secret", "durationMs": 60000}})

# gw_disconnect_device(device_name)
results["disconnectRc"] = publish("v1/gateway/disconnect", {"device": "Gw Dev A"})

client.loop_stop()
client.disconnect()
print("RESULT " + json.dumps(results), flush=True)
