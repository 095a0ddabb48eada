"""Asterisk AMI listener, call-event normalizer and fake PBX (talks to the rest only via RQ and Redis)."""
