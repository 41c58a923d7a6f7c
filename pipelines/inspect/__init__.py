"""Look at a published version: `tokenmill show` decodes examples, `tokenmill report` measures and draws them.

Both read only what a trainer reads (a version with its manifest, through
`readers.manifest.Corpus`), without Beam or TensorFlow.
"""
