"""Request time: ``Engine.invoke(unit, inputs)``, steps, output mapping, secret masking."""
