"""Greet the person named in the trigger payload and count the greetings."""


def handler(trigger, tools, virtual_files, subagent):
    name = (trigger or {}).get("name", "world")
    count = tools.state.increment(key=f"greeted:{name}")
    template = virtual_files["greeting.md"]
    return {"greeting": template.format(name=name, count=count).strip(), "count": count}
