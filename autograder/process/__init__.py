"""The student's process and its channel: the kernel sandbox it runs in (sandbox), the worker
inside it and its audit hook (worker, guard, copied into the sandbox with wire), the only data
format that crosses (wire), the grader's side of the channel (channel) and the implementations
a probe calls (impl: the student's, or the reference's in this process)."""
