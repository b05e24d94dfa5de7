// Package mqtt holds the MQTT device connector: mqtt-broker (one client
// session to a broker such as mosquitto, shared by the nodes using it),
// mqtt-in (subscribes to topic filters and turns JSON, text and number
// payloads into messages, with the device name and profile taken from a
// topic level or a payload field for gw-device routing) and mqtt-out
// (publishes messages to a topic, optionally templated from the message).
// The MQTT protocol work is done by github.com/eclipse/paho.mqtt.golang.
package mqtt
