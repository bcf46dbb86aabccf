"""What every app of the web side shares and no app owns: the queue client built from settings, and the
admin base for records the pipeline writes. It imports no app, so apps depend on it, never on each other
for infrastructure."""
