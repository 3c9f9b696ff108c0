"""What an event does to partition state and what the rules then decide: plain data in, events out.

The engine service runs it on Kafka with transactions; the admin's back-test runs the same code on
recorded history with a simulated clock, so a back-test decides exactly as the engine would.
"""
