"""The lab report: ``python -m chat report`` (it imports the chat and the lab; neither imports it).

- :mod:`chat.reporting.render` - the pipeline: experiments, figures, session, text;
- :mod:`chat.reporting.templates` - the Jinja2 templates' filters, tables and listings;
- :mod:`chat.reporting.facts` - every number the text quotes, computed once;
- :mod:`chat.reporting.tables` - the Markdown tables;
- :mod:`chat.reporting.numbers` - numbers written the way English and Russian write them;
- :mod:`chat.reporting.plots` - the figures (matplotlib, without pyplot), made and saved by
  :mod:`chat.reporting.canvas` so that they are the same bytes wherever they are drawn;
- :mod:`chat.reporting.terminal`, :mod:`chat.reporting.transcript` - a real
  console session, captured through a pseudo-terminal.
"""
