"""The lab: everything that measures the chat (it imports the chat; the chat never imports it).

- :mod:`chat.lab.loadgen`, :mod:`chat.lab.usergroup`, :mod:`chat.lab.udpgroup`,
  :mod:`chat.lab.config` - simulated users, many per process, and what they measured;
- :mod:`chat.lab.naive` - the textbook server, kept to measure against;
- :mod:`chat.lab.bench`, :mod:`chat.lab.measure` - the benchmark scenarios and how one run is measured;
- :mod:`chat.lab.results` - stored results and the queries everything reads them with;
- :mod:`chat.lab.harness` - a server in a process of its own, and its memory, CPU and threads read from /proc;
- :mod:`chat.lab.soak`, :mod:`chat.lab.blaster`, :mod:`chat.lab.netloss` - the
  long run, the fastest possible sender, and real packet loss on loopback;
- :mod:`chat.lab.stats` - percentiles and samples;
- :mod:`chat.lab.notebook`, :mod:`chat.lab.scale` - what the notebooks call;
- :mod:`chat.lab.checker` - ``python -m chat check``: grading any chat server from the outside;
- :mod:`chat.lab.steps` - six small servers, step by step from an echo to a correct chat, each graded by the checker.

Import the module you need (``from chat.lab import bench``): nothing is
imported here, so a notebook that needs one tool does not load them all.
"""
