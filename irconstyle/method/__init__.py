"""The method: ConStyle (query encoder, momentum encoder, queue) and the losses of IRConStyle.
May import: runtime.
"""
