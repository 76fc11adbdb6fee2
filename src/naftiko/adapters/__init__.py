"""The protocol adapters: each translates its protocol to ``Engine.invoke`` and back."""
