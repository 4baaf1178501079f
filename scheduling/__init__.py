"""The reply loop: plan (generate, guard, filter), store, cancel and deliver companion replies."""
