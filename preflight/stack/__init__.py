"""The training stack preflight runs for real: ms-swift's CLI and an SGLang server.

`make_tiny` builds a tiny offline model and dataset (run with the stack's Python),
`watch` runs a process tree bounded in time and proves none of it is left,
`swift` and `sglang` drive the two backends and turn what they print into plain data,
and `colocate` reads the GPU memory shares a launch line gives its engines.
Like the probes, these modules never judge: the checks in
`preflight/checks/test_stack.py` do.
"""
