"""User, Profile, Post, Tag, Parent and Child on the tables of ``benches/schema.sql``.

The tables are created from that file (``managed = False``: no migrations), so Django writes to
exactly the tables the Rust side writes to. ``Profile.user`` is ``DO_NOTHING`` so that deleting
a user runs one DELETE, as the Rust ORM does (a ``CASCADE`` would add a DELETE of profiles per
user); the M2M uses Django's auto-created through table, named ``post_tags``. ``Child.parent`` is
``CASCADE``: workload 8 measures Django's delete collector.
"""

from django.db import models


class User(models.Model):
    name = models.TextField()

    class Meta:
        app_label = "djbench"
        db_table = "users"
        managed = False


class Profile(models.Model):
    user = models.ForeignKey(User, on_delete=models.DO_NOTHING)
    bio = models.TextField()

    class Meta:
        app_label = "djbench"
        db_table = "profiles"
        managed = False


class Tag(models.Model):
    name = models.TextField()

    class Meta:
        app_label = "djbench"
        db_table = "tags"
        managed = False


class Post(models.Model):
    title = models.TextField()
    tags = models.ManyToManyField(Tag, db_table="post_tags")

    class Meta:
        app_label = "djbench"
        db_table = "posts"
        managed = False


class Parent(models.Model):
    name = models.TextField()

    class Meta:
        app_label = "djbench"
        db_table = "parents"
        managed = False


class Child(models.Model):
    parent = models.ForeignKey(Parent, on_delete=models.CASCADE)
    label = models.TextField()

    class Meta:
        app_label = "djbench"
        db_table = "children"
        managed = False
