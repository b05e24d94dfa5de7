"""Shared plumbing of the SDK replay scripts: an inbox of received messages
and waits on it."""
import threading

cond = threading.Condition()
inbox = {}


def on_message(_c, _u, m):
    """paho on_message: keep every payload by topic."""
    with cond:
        inbox.setdefault(m.topic, []).append(bytes(m.payload))
        cond.notify_all()


def wait(topic, timeout=15):
    """The next payload received on topic."""
    with cond:
        ok = cond.wait_for(lambda: inbox.get(topic), timeout)
        if not ok:
            raise SystemExit("no message on " + topic)
        return inbox[topic].pop(0)


def wait_prefix(prefix, timeout=15):
    """The next (topic, payload) received on a topic starting with prefix."""
    with cond:
        def find():
            for t, v in inbox.items():
                if t.startswith(prefix) and v:
                    return t
            return None
        ok = cond.wait_for(find, timeout)
        if not ok:
            raise SystemExit("no message on " + prefix)
        t = find()
        return t, inbox[t].pop(0)


def connect_v5(host, port, token, on_connect, on_subscribe, connected):
    """Connects as the SDK does (MQTT 5, keepalive 120, token as user name)
    and waits for on_connect to set connected."""
    import paho.mqtt.client as mqtt
    client = mqtt.Client(client_id="", protocol=mqtt.MQTTv5)
    client.username_pw_set(token)
    client.on_connect = on_connect
    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.connect(host, port, keepalive=120)
    client.loop_start()
    if not connected.wait(15):
        raise SystemExit("no CONNACK")
    return client
