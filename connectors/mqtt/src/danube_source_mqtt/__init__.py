"""MQTT source connector for Danube Connect."""
