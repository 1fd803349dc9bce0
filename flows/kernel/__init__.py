"""The kernel: what every room stands on and that knows no domain rule: domain errors, the clock (Beijing input,
UTC storage), the principal (who acts), credit codes, and the bounds every input is held to."""
