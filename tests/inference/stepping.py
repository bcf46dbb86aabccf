"""Driving an engine's generate_in_steps to its end, for the tests that compare it with one call."""


def run_in_steps(model, prompts, params, between=lambda: None, **kwargs):
    """Drive generate_in_steps as the worker does; returns its output and how many times it paused."""
    steps = model.generate_in_steps(prompts, params, **kwargs)
    pauses = 0
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value, pauses
        pauses += 1
        between()
