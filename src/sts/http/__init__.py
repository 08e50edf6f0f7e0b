"""HTTP plumbing shared by the faces (REST, web pages, Electrum, XMLVend): the error
model every refusal maps to once, per-face error rendering, and the body limit."""
